package jsonscan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

var corpus = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e+3`, `1E5`, `true`, `false`, `null`, ` {"a" : [1, 2, {"b": null}] } `,
	`{"a":"\u00e9\n\"\\\/"}`, "\t\r\n[1]\n", `"héllo wörld, a longer string than eight bytes"`,
	``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a"}`, `{a:1}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `tru`, `nul`, `"abc`,
	`"\x"`, `"\u12"`, "\"a\x01\"", `[1 2]`, `{"a":1 "b":2}`, `1 2`, `NaN`, `Infinity`, `'a'`, `[`, `{"a":`,
	`"abcdefgh\"ijklmnop"`, `"abcdefghijklmno\`, "\"abcdefghij\x1fklmnop\"",
}

// Valid (without the UTF-8 rule) accepts exactly what encoding/json does;
// Strict also refuses invalid UTF-8.
func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, s := range corpus {
		_, err := Rules{}.Valid([]byte(s))
		if (err == nil) != json.Valid([]byte(s)) {
			t.Errorf("%q: Valid err=%v, json.Valid=%v", s, err, json.Valid([]byte(s)))
		}
	}
	for _, s := range []string{"\"\xff\"", "{\"k\xc3\":1}", "[\"ok\",\"a\xed\xa0\x80\"]"} {
		if _, err := (Rules{}).Valid([]byte(s)); err != nil {
			t.Errorf("%q: %v; encoding/json takes invalid UTF-8", s, err)
		}
		if _, err := Strict.Valid([]byte(s)); err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
			t.Errorf("%q: Strict.Valid err = %v, want invalid UTF-8", s, err)
		}
	}
	deep := bytes.Repeat([]byte("["), MaxDepth+1)
	if _, err := Strict.Valid(append(deep, bytes.Repeat([]byte("]"), MaxDepth+1)...)); err == nil {
		t.Error("nesting beyond MaxDepth accepted")
	}
	ok := bytes.Repeat([]byte("["), MaxDepth)
	if _, err := Strict.Valid(append(ok, bytes.Repeat([]byte("]"), MaxDepth)...)); err != nil {
		t.Errorf("nesting at MaxDepth: %v", err)
	}
}

func TestErrorsSayWhereAndWhat(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"a":}`, `byte 6: expected a JSON value, got '}'`},
		{"{\"a\":\"\xff\"}", `byte 7: invalid UTF-8`},
		{`{} x`, `byte 4: unexpected 'x' after the value`},
		{`{"a" 1}`, `byte 6: expected ':', got '1'`},
		{`[1,2`, `byte 5: unexpected end of JSON, expected ',' or ']'`},
		{`"a\qb"`, `byte 3: invalid escape \q`},
		{`1.e5`, `byte 3: expected a digit after '.', got 'e'`},
	} {
		_, err := Strict.Valid([]byte(c.in))
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: %v, want %s", c.in, err, c.want)
		}
	}
}

func TestKindsAndStrInfo(t *testing.T) {
	for in, want := range map[string]Kind{`null`: Null, `true`: Bool, `-12`: Int, `1.5`: Float, `1e3`: Float,
		`"s"`: String, `{"a":[]}`: Object, `[{}]`: Array} {
		end, k, err := Strict.Value([]byte(in), 0)
		if err != nil || k != want || end != len(in) {
			t.Errorf("%s: kind %v end %d err %v, want %v", in, k, end, err, want)
		}
	}
	for in, want := range map[string]StrInfo{`"plain ascii text"`: 0, `"a\nb"`: Escaped, `"é"`: NonASCII,
		"\"\xff\"": NonASCII | BadUTF8, `"\u00e9 é"`: Escaped | NonASCII} {
		end, info, err := ScanString([]byte(in), 0)
		if err != nil || info != want || end != len(in) {
			t.Errorf("%s: info %b end %d err %v, want %b", in, info, end, err, want)
		}
	}
}

func TestInRange(t *testing.T) {
	for in, want := range map[string]bool{"1": true, "-1.5": true, "1e308": true, "1e309": false, "-1E999": false,
		"123456789012345678901234567890": true, strings.Repeat("9", 400): false, "0." + strings.Repeat("1", 400): true} {
		if got := InRange([]byte(in)); got != want {
			t.Errorf("InRange(%.20s...) = %v, want %v", in, got, want)
		}
		var f float64
		if dec := json.Unmarshal([]byte(in), &f) == nil; dec != want {
			t.Errorf("%.20s: encoding/json decodes=%v, test wants %v", in, dec, want)
		}
	}
}

// Skip finds the same end as Value on valid text.
func TestSkipAgreesWithValue(t *testing.T) {
	for _, s := range corpus {
		b := []byte(s)
		if _, err := (Rules{}).Valid(b); err != nil {
			continue
		}
		i := SkipWS(b, 0)
		end, _, _ := Rules{}.Value(b, i)
		if got, ok := Skip(b, i); !ok || got != end {
			t.Errorf("%q: Skip end %d ok %v, Value end %d", s, got, ok, end)
		}
	}
}

func TestMembers(t *testing.T) {
	obj := []byte(` {"a": 1, "b\n" : {"x":[1,"}"]}, "c":"v", "a":null} `)
	ms, isObj, err := Members(obj, nil)
	if err != nil || !isObj || len(ms) != 4 {
		t.Fatalf("Members: %d members, object %v, err %v", len(ms), isObj, err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, fmt.Sprintf("%s=%s|%s", m.Name(), obj[m.Val:m.End], obj[m.Start:m.End]))
	}
	want := []string{`a=1|"a": 1`, "b\n" + `={"x":[1,"}"]}|"b\n" : {"x":[1,"}"]}`, `c="v"|"c":"v"`, `a=null|"a":null`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("members\n got %q\nwant %q", got, want)
	}
	if !ms[1].KeyIs("b\n") || ms[1].KeyIs(`b\n`) || !ms[0].KeyIs("a") {
		t.Error("KeyIs does not compare decoded keys")
	}
	if _, isObj, _ := Members([]byte(`[1]`), nil); isObj {
		t.Error("an array listed as an object")
	}
	for _, bad := range []string{`{"a" 1}`, `{"a":1`, `{"a":1}x`, `{1:2}`} {
		if _, _, err := Members([]byte(bad), nil); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func FuzzValueMatchesEncodingJSON(f *testing.F) {
	for _, s := range corpus {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := Rules{}.Valid(b)
		if (err == nil) != json.Valid(b) {
			t.Fatalf("%q: Valid err=%v, json.Valid=%v", b, err, json.Valid(b))
		}
		if err == nil {
			i := SkipWS(b, 0)
			end, _, _ := Rules{}.Value(b, i)
			if got, ok := Skip(b, i); !ok || got != end {
				t.Fatalf("%q: Skip end %d, Value end %d", b, got, end)
			}
		}
	})
}

// TestScanStringEveryPosition checks the eight-bytes-at-a-time scan against the
// byte loop at every position of strings with each kind of special byte.
func TestScanStringEveryPosition(t *testing.T) {
	for _, special := range []string{`"`, `\\`, `\n`, "\x01", "\x1f", "é", "\xff", " ", "~", "\x7f", "!", "#", "[", "]"} {
		for pos := 0; pos < 20; pos++ {
			body := strings.Repeat("a", pos) + special + strings.Repeat("b", 20-pos)
			q := []byte(`"` + body + `"`)
			j, info, err := ScanString(q, 0)
			ok, plain := err == nil, info&(Escaped|NonASCII) == 0
			wantJ, wantOK := 0, false
			var u string
			if json.Unmarshal(q, &u) == nil {
				wantJ, wantOK = len(q), true
			} else if special == `"` {
				wantJ, wantOK = pos+2, true // the string ends there
			}
			wantPlain := wantOK // ASCII without escapes
			for _, c := range q[:wantJ] {
				wantPlain = wantPlain && c != '\\' && c < 0x80
			}
			if j != wantJ || ok != wantOK || (ok && plain != wantPlain) {
				t.Errorf("%q: got %d %v %v, want %d %v %v", q, j, plain, ok, wantJ, wantPlain, wantOK)
			}
		}
	}
}

// Skip's eight-bytes-at-a-time string scan ends where ScanString does, with
// a quote or an escape at every position.
func TestSkipStringEveryPosition(t *testing.T) {
	for _, special := range []string{`\"`, `\\`, `\n`, `\u0041`, "é", "x"} {
		for pos := 0; pos < 20; pos++ {
			for tail := 0; tail < 12; tail += 5 {
				q := []byte(`"` + strings.Repeat("a", pos) + special + strings.Repeat("b", tail) + `",1`)
				want, _, err := ScanString(q, 0)
				if err != nil {
					t.Fatal(err)
				}
				if got, ok := Skip(q, 0); !ok || got != want {
					t.Errorf("%q: Skip end %d ok %v, want %d", q, got, ok, want)
				}
			}
		}
	}
}
