package lines

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
