package format

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// recordScan, fed a record's lines in chunks, ends each line complete or
// not and counts fields exactly as splitFields splits the record's text:
// random lines of quotes, delimiters and other bytes, with one-byte and
// multi-byte quotes and delimiters (some sharing a first byte).
func TestRecordScanMatchesSplitFields(t *testing.T) {
	pairs := []struct{ quote, delim rune }{{'"', ','}, {'\'', '|'}, {'"', '\t'}, {'¦', '§'}, {'§', '¦'}, {'"', '¦'}, {'€', ','}, {'😀', '😁'}, {utf8.RuneError, ','}}
	rnd := rand.New(rand.NewPCG(3, 4))
	for _, pq := range pairs {
		for _, pgText := range []bool{false, true} {
			delim := pq.delim
			if pgText {
				delim = '\t' // as newCSVReader sets it
			}
			c := &csvReader{opts: CSVOptions{Quote: pq.quote, Delimiter: delim, PostgresText: pgText}}
			c.quote, c.delim = utf8.AppendRune(nil, pq.quote), utf8.AppendRune(nil, delim)
			scan := recordScan{quote: c.quote, delim: c.delim}
			if pgText {
				scan.quote = nil
			}
			q, d := string(c.quote), string(c.delim)
			atoms := []string{q, q, d, d, "a", "b", " ", "\r", q[:1], d[:1], q[len(q)-1:], "\xff", q + q}
			for iter := 0; iter < 3000; iter++ {
				var lines []string
				for range 1 + rnd.IntN(4) {
					var sb strings.Builder
					for range rnd.IntN(12) {
						sb.WriteString(atoms[rnd.IntN(len(atoms))])
					}
					lines = append(lines, sb.String())
				}
				scan.start()
				raw := ""
				for i, l := range lines {
					if i > 0 {
						scan.fields = len(c.fields) + 1
						scan.inQuotes()
						raw += "\n"
					}
					raw += l
					for rest := l; rest != ""; { // in random chunks
						n := 1 + rnd.IntN(len(rest))
						scan.feed([]byte(rest[:n]))
						rest = rest[n:]
					}
					complete, err := c.splitFields([]byte(raw))
					if pgText {
						complete = true
					}
					width := len(c.fields)
					got := scan.endLine()
					if got != complete {
						t.Fatalf("quote %q delim %q pg %v: %q: scan says complete %v, splitFields %v", q, d, pgText, raw, got, complete)
					}
					if complete && err == nil && scan.fields != width {
						t.Fatalf("quote %q delim %q pg %v: %q: scan counts %d fields, splitFields %d", q, d, pgText, raw, scan.fields, width)
					}
					if complete {
						break
					}
				}
			}
		}
	}
}
