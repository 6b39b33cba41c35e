package format

import "bytes"

// recordScan follows a CSV record through bytes it does not keep (a
// record over max_line_bytes, read past): where its quoted fields open and
// close, and so where it ends, exactly as splitFields would split it, and
// how many fields it has. Lines are fed one after the other, with the
// "\n" that joins a record's lines fed before each line but the first.
//
// The quote and the delimiter are UTF-8 encodings of one character each,
// matched byte by byte as splitFields matches them (bytes.Index,
// bytes.HasPrefix). A match cannot start inside another one's bytes (a
// character's first byte is never one of its later bytes), so a partial
// match that fails starts over at the byte that failed it.
type recordScan struct {
	quote, delim []byte // quote is nil for Postgres COPY text: no quoting
	state        scanState
	qm, dm       int // bytes of the quote, of the delimiter matched so far
	fields       int
}

type scanState uint8

const (
	atFieldStart scanState = iota // where a field starts: a quote opens a quoted one
	inUnquoted                    // in a field without quotes: the delimiter ends it
	inQuoted                      // in a quoted field: a quote closes it
	afterQuote                    // after a quote in a quoted field: a second one is a quote, a delimiter ends the field
	inBad                         // after a closing quote came something else: the rest of the line is the record's, in fields
)

// start readies the scan for a record's first line.
func (s *recordScan) start() {
	s.state, s.qm, s.dm, s.fields = atFieldStart, 0, 0, 1
}

// inQuotes readies it for the next line of a record whose last line ended
// inside a quoted field (splitFields said it was not complete), with the
// "\n" between them fed.
func (s *recordScan) inQuotes() {
	s.state, s.qm, s.dm = inQuoted, 0, 0
	s.feed([]byte{'\n'})
}

// match advances a matcher of pat over byte c: m bytes matched before, how
// many after, and whether pat is whole.
func match(pat []byte, m int, c byte) (int, bool) {
	if c != pat[m] {
		if m == 0 || c != pat[0] {
			return 0, false
		}
		m = 0
	}
	m++
	if m == len(pat) {
		return 0, true
	}
	return m, false
}

// prefix advances a HasPrefix check of pat over byte c: m bytes matched
// before; ok false when the prefix failed.
func prefix(pat []byte, m int, c byte) (next int, whole, ok bool) {
	if m < 0 || c != pat[m] {
		return -1, false, false
	}
	if m+1 == len(pat) {
		return 0, true, true
	}
	return m + 1, false, true
}

func (s *recordScan) feed(p []byte) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch s.state {
		case atFieldStart:
			// A quote here opens a quoted field; until it is whole or
			// fails, the delimiter is matched alongside (an empty field
			// may end at once).
			if s.quote != nil && s.qm >= 0 {
				var whole, ok bool
				s.qm, whole, ok = prefix(s.quote, s.qm, c)
				if whole {
					s.state, s.qm, s.dm = inQuoted, 0, 0
					continue
				}
				if ok {
					s.dm, _ = match(s.delim, s.dm, c) // a shared first byte
					continue
				}
			}
			s.state = inUnquoted
			i-- // this byte again, as a field's
			s.qm = 0
		case inUnquoted:
			if s.dm == 0 { // the common case: jump to the delimiter's first byte
				j := bytes.IndexByte(p[i:], s.delim[0])
				if j < 0 {
					return
				}
				i += j
				c = p[i]
			}
			var whole bool
			if s.dm, whole = match(s.delim, s.dm, c); whole {
				s.fields++
				s.state, s.qm, s.dm = atFieldStart, 0, 0
			}
		case inQuoted:
			if s.qm == 0 {
				j := bytes.IndexByte(p[i:], s.quote[0])
				if j < 0 {
					return
				}
				i += j
				c = p[i]
			}
			var whole bool
			if s.qm, whole = match(s.quote, s.qm, c); whole {
				s.state, s.qm, s.dm = afterQuote, 0, 0
			}
		case afterQuote:
			// HasPrefix of a second quote, else of the delimiter, from
			// the same byte.
			var qWhole, qOK, dWhole, dOK bool
			s.qm, qWhole, qOK = prefix(s.quote, s.qm, c)
			if qWhole {
				s.state, s.qm, s.dm = inQuoted, 0, 0
				continue
			}
			s.dm, dWhole, dOK = prefix(s.delim, s.dm, c)
			if dWhole && !qOK {
				s.fields++
				s.state, s.qm, s.dm = atFieldStart, 0, 0
				continue
			}
			if !qOK && !dOK {
				s.state, s.dm = inBad, 0
				i-- // this byte again, as the bad field's
			}
		case inBad:
			// The record ends with the line; its fields go on counting,
			// quotes or not, for a first row that names the columns.
			if s.dm == 0 {
				j := bytes.IndexByte(p[i:], s.delim[0])
				if j < 0 {
					return
				}
				i += j
				c = p[i]
			}
			var whole bool
			if s.dm, whole = match(s.delim, s.dm, c); whole {
				s.fields++
			}
		}
	}
}

// endLine ends a line fed: unless a quoted field is still open, the
// record ends there, and a partial match (a quote or delimiter cut by the
// line's end) fails.
func (s *recordScan) endLine() (complete bool) {
	if s.state == inQuoted {
		return false
	}
	s.state, s.dm = inBad, 0
	return true
}
