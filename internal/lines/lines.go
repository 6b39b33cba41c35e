// Package lines reads newline-delimited text (NDJSON, CSV records, the
// dead-letter file) a line at a time, whatever the line's length up to
// MaxLine, without copying lines that fit the buffer; and opens NDJSON
// files to append whole lines to (OpenAppend).
package lines

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// MaxLine caps one line (or one CSV record) so a file without newlines
// cannot take all memory.
const MaxLine = 64 << 20

// Reader returns lines of any length up to MaxLine; bufio.Scanner would
// stop at 64 KB.
type Reader struct {
	name string
	br   *bufio.Reader
	line int64 // number of the last line returned, from 1
	buf  []byte
}

// NewReader reads r, named name in errors; r is used as is when it is a
// *bufio.Reader, else buffered with bufSize bytes.
func NewReader(name string, r io.Reader, bufSize int) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, bufSize)
	}
	return &Reader{name: name, br: br}
}

// Line is the number of the last line Next returned, from 1.
func (l *Reader) Line() int64 { return l.line }

// Next returns the next line without its "\n" or "\r\n", valid until the
// next call, or io.EOF.
func (l *Reader) Next() ([]byte, error) {
	s, err := l.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		l.buf = append(l.buf[:0], s...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(l.buf) > MaxLine {
				return nil, fmt.Errorf("%s line %d: longer than %d MB", l.name, l.line+1, MaxLine>>20)
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
	l.line++
	if n := len(s); s[n-1] == '\n' {
		s = s[:n-1]
		if n := len(s); n > 0 && s[n-1] == '\r' {
			s = s[:n-1]
		}
	}
	return s, nil
}
