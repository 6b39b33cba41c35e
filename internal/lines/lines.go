// Package lines reads newline-delimited text (NDJSON, CSV records, the
// dead-letter file) a line at a time, whatever the line's length up to a
// limit, without copying lines that fit the buffer; and opens NDJSON
// files to append whole lines to (OpenAppend).
package lines

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// MaxLine is the default limit of one line (or one CSV record) so a file
// without newlines cannot take all memory. Readers of input files set a
// lower one (SetMax).
const MaxLine = 64 << 20

// HeadBytes is how much of a line over the limit a TooLongError keeps.
const HeadBytes = 200

// Reader returns lines of any length up to its limit (MaxLine unless
// SetMax says otherwise); bufio.Scanner would stop at 64 KB. A longer line
// is not held: Next streams past it, counting its bytes, and reports it
// as a *TooLongError, after which reading goes on with the next line.
type Reader struct {
	name string
	br   *bufio.Reader
	line int64 // number of the last line returned, from 1
	buf  []byte
	max  int

	// Skipped, when set, is given the bytes of each line over the limit
	// as Next streams past them, in order and without the line's end
	// ("\n" or "\r\n"), before Next returns its *TooLongError. The slice
	// is valid only during the call. A CSV reader follows its quotes so.
	Skipped func([]byte)
}

// TooLongError is a line longer than the reader's limit. Next has read
// past it: it counts as a line (Line), and the next call reads the line
// after it.
type TooLongError struct {
	Name string
	Line int64  // the line's number, from 1
	Size int64  // its length in bytes, without its line end
	Max  int    // the limit it is over
	Head []byte // its first bytes: HeadBytes at most, not cutting a UTF-8 character
}

func (e *TooLongError) Error() string {
	return fmt.Sprintf("%s line %d: %d bytes, longer than the limit of %d", e.Name, e.Line, e.Size, e.Max)
}

// NewReader reads r, named name in errors; r is used as is when it is a
// *bufio.Reader, else buffered with bufSize bytes.
func NewReader(name string, r io.Reader, bufSize int) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, bufSize)
	}
	return &Reader{name: name, br: br, max: MaxLine}
}

// SetMax sets the longest line Next returns, in bytes without the line
// end; n <= 0 restores MaxLine. Memory stays within about n plus the
// buffer, whatever the input.
func (l *Reader) SetMax(n int) {
	if n <= 0 {
		n = MaxLine
	}
	l.max = n
}

// Max is the reader's limit.
func (l *Reader) Max() int { return l.max }

// Line is the number of the last line Next returned, from 1.
func (l *Reader) Line() int64 { return l.line }

// Next returns the next line without its "\n" or "\r\n", valid until the
// next call, or io.EOF. A line over the limit comes back as a nil line and
// a *TooLongError, having been read past.
func (l *Reader) Next() ([]byte, error) {
	s, err := l.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		l.buf = append(l.buf[:0], s...)
		for errors.Is(err, bufio.ErrBufferFull) {
			// +2: a line of exactly max bytes may still have its "\r\n"
			// to come.
			if len(l.buf) > l.max+2 {
				return nil, l.skip(l.buf, false)
			}
			s, err = l.br.ReadSlice('\n')
			l.buf = append(l.buf, s...)
		}
		s = l.buf
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s line %d: %w", l.name, l.line+1, err)
	}
	if len(s) == 0 {
		return nil, io.EOF
	}
	line := trimEnd(s)
	if len(line) > l.max {
		return nil, l.skip(line, true)
	}
	l.line++
	return line, nil
}

// trimEnd cuts a line's "\n" or "\r\n".
func trimEnd(s []byte) []byte {
	if n := len(s); n > 0 && s[n-1] == '\n' {
		s = s[:n-1]
		if n := len(s); n > 0 && s[n-1] == '\r' {
			s = s[:n-1]
		}
	}
	return s
}

// skip reads past the rest of a line over the limit, of which first has
// been read already: the whole line, its end cut off, when whole is true,
// else its start, without a "\n".
func (l *Reader) skip(first []byte, whole bool) error {
	e := &TooLongError{Name: l.name, Line: l.line + 1, Max: l.max}
	var h []byte // the first HeadBytes+utf8.UTFMax bytes
	data := func(p []byte) {
		if len(p) > 0 {
			if len(h) < HeadBytes+utf8.UTFMax {
				h = append(h, p[:min(len(p), HeadBytes+utf8.UTFMax-len(h))]...)
			}
			e.Size += int64(len(p))
			if l.Skipped != nil {
				l.Skipped(p)
			}
		}
	}
	if whole {
		data(first)
		l.line++
		e.Head = Head(h)
		return e
	}
	// A "\r" at the end of a chunk may be the start of the line's "\r\n":
	// it is held back until the next byte says.
	heldCR := false
	flushCR := func() {
		if heldCR {
			heldCR = false
			data([]byte{'\r'})
		}
	}
	chunk := func(p []byte) {
		if len(p) == 0 {
			return
		}
		flushCR()
		if p[len(p)-1] == '\r' {
			p, heldCR = p[:len(p)-1], true
		}
		data(p)
	}
	chunk(first)
	for {
		s, err := l.br.ReadSlice('\n')
		if n := len(s); n > 0 && s[n-1] == '\n' {
			body := s[:n-1]
			if len(body) == 0 {
				heldCR = false // it was the "\r" of the line's "\r\n"
			} else {
				flushCR()
				data(bytes.TrimSuffix(body, []byte{'\r'}))
			}
			break
		}
		if err == nil || errors.Is(err, bufio.ErrBufferFull) {
			chunk(s)
			continue
		}
		if errors.Is(err, io.EOF) { // the last line, without a "\n": a "\r" is data
			flushCR()
			data(s)
			break
		}
		return fmt.Errorf("%s line %d: %w", l.name, l.line+1, err)
	}
	l.line++
	e.Head = Head(h)
	return e
}

// Head is the first HeadBytes of b, copied, not cutting a UTF-8 character
// in two: what a reject shows of a line too long to keep.
func Head(b []byte) []byte {
	if len(b) > HeadBytes {
		b = b[:HeadBytes]
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			c := b[i]
			if c < 0x80 {
				break
			}
			if c >= 0xc0 { // the first byte of a character: is it whole?
				need := 2
				if c >= 0xf0 {
					need = 4
				} else if c >= 0xe0 {
					need = 3
				}
				if len(b)-i < need {
					b = b[:i]
				}
				break
			}
		}
	}
	return append([]byte(nil), b...)
}
