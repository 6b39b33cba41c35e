package message

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand"
	"strconv"
	"strings"
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

// The two-decimal fast path must write exactly what strconv's shortest
// representation does, for amounts and for the floats around them.
func TestAppendCentsMatchesStrconv(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	check := func(f float64) {
		t.Helper()
		got, ok := appendCents(nil, f)
		if !ok {
			return
		}
		want := strconv.AppendFloat(nil, f, 'f', -1, 64)
		if string(got) != string(want) {
			t.Fatalf("%v: appendCents %s, strconv %s", f, got, want)
		}
	}
	hits := 0
	for i := 0; i < 300000; i++ {
		var cents int64
		switch i % 4 {
		case 0:
			cents = r.Int63n(100_000) // up to 1,000.00
		case 1:
			cents = r.Int63n(1e15) // up to the 1e13 bound
		case 2:
			cents = -r.Int63n(1e9)
		default:
			cents = r.Int63n(1 << 62)
		}
		f := float64(cents) / 100
		if _, ok := appendCents(nil, f); ok {
			hits++
		}
		check(f)
		check(math.Nextafter(f, math.Inf(1)))
		check(math.Nextafter(f, math.Inf(-1)))
		check(r.NormFloat64() * math.Pow(10, float64(r.Intn(20)-6)))
	}
	if hits < 200000 {
		t.Errorf("fast path taken for %d of 300000 amounts", hits)
	}
	for _, f := range []float64{0.01, 0.1, 0.3, 1.1, 2.675, 9007199254740.99, 1e12, 123.45, -0.5, 0.07} {
		check(f)
	}
	if _, ok := appendCents(nil, math.Copysign(0, -1)); ok {
		t.Error("-0 taken by the fast path")
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

// BenchmarkAppendFloat writes amounts with two decimals, the shape of most
// event floats; one op is one value.
func BenchmarkAppendFloat(b *testing.B) {
	vals := make([]float64, 1024)
	for i := range vals {
		vals[i] = float64(i*7919%100_000) / 100
	}
	var dst []byte
	b.Run("cents", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dst = appendFloat(dst[:0], vals[i%len(vals)], 64)
		}
	})
	b.Run("strconv", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dst = strconv.AppendFloat(dst[:0], vals[i%len(vals)], 'f', -1, 64)
		}
	})
}

// allSafe agrees with the byte table on every length up to 100 with one
// byte of each kind at each position: the words it ORs together must not
// hide one.
func TestAllSafe(t *testing.T) {
	for n := 0; n <= 100; n++ {
		base := []byte(strings.Repeat("a~ Z09", 20)[:n])
		if !allSafe(string(base)) {
			t.Fatalf("%q: not safe", base)
		}
		for at := 0; at < n; at++ {
			for _, c := range []byte{0, 0x1f, '"', '\\', 0x7f, 0x80, 0xe2, 0xff} {
				s := bytes.Clone(base)
				s[at] = c
				if got, want := allSafe(string(s)), safe[c]; got != want {
					t.Fatalf("%q: allSafe %v, want %v", s, got, want)
				}
			}
		}
	}
}
