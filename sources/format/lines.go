package format

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// maxLine caps one line (or one CSV record) so a file without newlines
// cannot take all memory.
const maxLine = 64 << 20

// lineReader returns lines of any length up to maxLine; bufio.Scanner
// would stop at 64 KB.
type lineReader struct {
	name string
	br   *bufio.Reader
	line int64 // number of the last line returned, from 1
	buf  []byte
}

func newLineReader(name string, r io.Reader) *lineReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, readBuffer)
	}
	return &lineReader{name: name, br: br}
}

// next returns the next line without its "\n" or "\r\n", valid until the
// next call, or io.EOF.
func (l *lineReader) next() ([]byte, error) {
	s, err := l.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		l.buf = append(l.buf[:0], s...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(l.buf) > maxLine {
				return nil, fmt.Errorf("%s line %d: longer than %d MB", l.name, l.line+1, maxLine>>20)
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

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
