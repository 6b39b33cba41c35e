package lines

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestReaderLines(t *testing.T) {
	long := strings.Repeat("x", 100) // longer than the 16-byte buffer
	r := NewReader("t.ndjson", strings.NewReader("a\r\n"+long+"\n\nlast"), 16)
	var got []string
	for {
		l, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(l))
	}
	if strings.Join(got, "|") != "a|"+long+"||last" || r.Line() != 4 {
		t.Fatalf("lines %q, line %d", got, r.Line())
	}
}

// OpenAppend keeps complete lines, cuts a partial last one (a kill
// mid-write), and appends after them; truncate starts over.
func TestOpenAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "f.ndjson")
	for _, tc := range []struct {
		before   string
		truncate bool
		want     string
	}{
		{"", false, "new\n"},
		{"one\ntwo\n", false, "one\ntwo\nnew\n"},
		{"one\n{\"cut", false, "one\nnew\n"},
		{"{\"cut", false, "new\n"},
		{"one\n", true, "new\n"},
	} {
		if tc.before != "" {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, []byte(tc.before), 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			os.Remove(path)
		}
		f, err := OpenAppend(path, tc.truncate)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("new\n")
		f.Close()
		if got, _ := os.ReadFile(path); string(got) != tc.want {
			t.Errorf("%q (truncate %v): file %q, want %q", tc.before, tc.truncate, got, tc.want)
		}
	}
}

// refLines splits s as Next reads it: at each "\n", with a "\r" before it
// cut too; a last line without "\n" keeps a "\r".
func refLines(s string) []string {
	var out []string
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, strings.TrimSuffix(s[:i], "\r"))
		s = s[i+1:]
	}
	return out
}

// Lines over the limit come back as *TooLongError with their size, their
// first bytes and (through Skipped) every byte of them; the lines around
// them are read as usual. Random texts of 'a', '\r' and '\n' against a
// plain split, with every limit around the buffer's 16 bytes.
func TestReaderTooLong(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := "aaaa\r\nb"
	for iter := 0; iter < 20000; iter++ {
		n := rnd.IntN(120)
		var sb strings.Builder
		for range n {
			sb.WriteByte(alphabet[rnd.IntN(len(alphabet))])
		}
		text := sb.String()
		max := rnd.IntN(50)
		if max == 0 {
			max = 1
		}
		r := NewReader("f", strings.NewReader(text), 16)
		r.SetMax(max)
		var skipped []byte
		r.Skipped = func(p []byte) { skipped = append(skipped, p...) }
		want := refLines(text)
		for i, w := range want {
			skipped = skipped[:0]
			got, err := r.Next()
			if len(w) > max {
				var tl *TooLongError
				if !errors.As(err, &tl) || got != nil || tl.Line != int64(i+1) || tl.Size != int64(len(w)) ||
					string(skipped) != w || !strings.HasPrefix(w, string(tl.Head)) || len(tl.Head) != min(len(w), HeadBytes) {
					t.Fatalf("%q max %d line %d: got %q, %v (skipped %q), want %q too long", text, max, i+1, got, err, skipped, w)
				}
			} else if err != nil || string(got) != w {
				t.Fatalf("%q max %d line %d: got %q, %v, want %q", text, max, i+1, got, err, w)
			}
			if r.Line() != int64(i+1) {
				t.Fatalf("%q: Line() = %d after line %d", text, r.Line(), i+1)
			}
		}
		if got, err := r.Next(); err != io.EOF {
			t.Fatalf("%q max %d: after the last line: %q, %v", text, max, got, err)
		}
	}
}

// A line far over the buffer and the limit is read past in chunks: the
// reader's memory stays near the limit, and the next line is read.
func TestReaderSkipsHugeLine(t *testing.T) {
	const size = 20 << 20
	text := io.MultiReader(strings.NewReader("first\n"), strings.NewReader(strings.Repeat("x", size)), strings.NewReader("\r\nlast"))
	r := NewReader("big.ndjson", text, 4096)
	r.SetMax(1 << 20)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	var got []string
	for {
		l, err := r.Next()
		if err == io.EOF {
			break
		}
		var tl *TooLongError
		if errors.As(err, &tl) {
			got = append(got, fmt.Sprintf("too long: line %d, %d bytes, head %d bytes", tl.Line, tl.Size, len(tl.Head)))
			if !strings.Contains(err.Error(), "big.ndjson line 2: 20971520 bytes, longer than the limit of 1048576") {
				t.Errorf("error %q", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(l))
	}
	runtime.ReadMemStats(&ms1)
	if want := "first|too long: line 2, 20971520 bytes, head 200 bytes|last"; strings.Join(got, "|") != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > 8<<20 {
		t.Errorf("reading past a 20 MB line allocated %d MB", alloc>>20)
	}
}

// The head of a line over the limit is cut before a UTF-8 character that
// does not fit, not in it.
func TestHeadKeepsCharactersWhole(t *testing.T) {
	for pad := 195; pad <= 200; pad++ {
		line := strings.Repeat("a", pad) + strings.Repeat("é€😀", 3)
		h := Head([]byte(line))
		if !utf8.Valid(h) || len(h) > HeadBytes || len(h) < HeadBytes-3 || !strings.HasPrefix(line, string(h)) {
			t.Errorf("pad %d: head %q (%d bytes)", pad, h[pad-5:], len(h))
		}
	}
	if h := Head([]byte("\xff\xfe")); string(h) != "\xff\xfe" {
		t.Errorf("a short head is kept whole: %q", h)
	}
}
