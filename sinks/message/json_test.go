package message

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"testing"
)

// appendString must agree with encoding/json (HTML escaping off) on any
// input, invalid UTF-8 included.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	alphabet := []string{"a", "é", "😀", "\"", "\\", "\n", "\x00", "\x1f", "\x7f", "\xff", "\xc3", "\u2028", "\u2029", "<", "&", "\ufffd", "\xed\xa0\x80"}
	for i := 0; i < 20000; i++ {
		var s string
		for n := r.Intn(12); n > 0; n-- {
			s += alphabet[r.Intn(len(alphabet))]
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		got := appendString(nil, s)
		if !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Fatalf("%q: got %s want %s", s, got, want.Bytes())
		}
	}
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.1, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, -2.5e-10, 5e300} {
		want, _ := json.Marshal(f)
		if got := appendFloat(nil, f, 64); string(got) != string(want) {
			t.Errorf("%v: got %s want %s", f, got, want)
		}
		want32, err := json.Marshal(float32(f))
		if err != nil {
			continue // out of float32's range
		}
		if got := appendFloat(nil, float64(float32(f)), 32); string(got) != string(want32) {
			t.Errorf("float32 %v: got %s want %s", f, got, want32)
		}
	}
}

// safe8 must agree with the byte table on every word, in particular at the
// class boundaries (0x1f/0x20, '"', '\\', 0x7f/0x80) next to other bytes
// whose borrows could hide or fake a hit.
func TestSafe8MatchesTable(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	edge := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"', 0x23, 0x5b, '\\', 0x5d, 0x7e, 0x7f, 0x80, 0xff, 'a', 'Z'}
	for n := 0; n < 200000; n++ {
		var b [8]byte
		for i := range b {
			if r.Intn(2) == 0 {
				b[i] = edge[r.Intn(len(edge))]
			} else {
				b[i] = byte(r.Intn(256))
			}
		}
		want := true
		for _, c := range b {
			want = want && safe[c]
		}
		if got := safe8(load64(string(b[:]), 0)); got != want {
			t.Fatalf("% x: safe8 %v, table %v", b, got, want)
		}
	}
}
