package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// rowHandler takes one row's values (nil for NULL), valid only during the
// call.
type rowHandler func(vals [][]byte) error

// fetchRows fetches from the split's cursor, n rows at a time, each
// FETCH decoded as its rows arrive, until a FETCH returns fewer than n.
func fetchRows(ctx context.Context, pc *pgconn.PgConn, n int, formats []int16, h rowHandler) error {
	fetch := fetchSQL(n)
	for {
		rr := pc.ExecParams(ctx, fetch, nil, nil, nil, formats)
		got := 0
		for rr.NextRow() {
			got++
			if err := h(rr.Values()); err != nil {
				rr.Close()
				return err
			}
		}
		if _, err := rr.Close(); err != nil {
			return err
		}
		if got < n {
			return nil
		}
	}
}

// copyRows runs COPY ... TO STDOUT (FORMAT binary) and decodes each row
// in the connection's own buffer, as pgconn hands over its CopyData
// messages (Postgres sends one row a message): no pipe, no copy.
func copyRows(ctx context.Context, pc *pgconn.PgConn, sql string, h rowHandler) error {
	p := &copyParser{h: h}
	if _, err := pc.CopyTo(ctx, p, sql); err != nil {
		return err
	}
	if !p.trailer {
		return errors.New("postgres: COPY ended without its trailer")
	}
	return nil
}

var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

// copyParser parses the binary COPY format from the chunks pgconn writes
// to it; a tuple split across chunks is carried over.
type copyParser struct {
	h       rowHandler
	carry   []byte
	header  bool
	trailer bool
	vals    [][]byte
}

func (p *copyParser) Write(b []byte) (int, error) {
	n := len(b)
	if len(p.carry) > 0 {
		p.carry = append(p.carry, b...)
		b = p.carry
	}
	used, err := p.parse(b)
	if err != nil {
		return 0, err
	}
	if rest := b[used:]; len(rest) > 0 {
		p.carry = append(p.carry[:0], rest...)
	} else {
		p.carry = p.carry[:0]
	}
	return n, nil
}

// parse decodes the whole tuples at the start of b and says how many
// bytes they took.
func (p *copyParser) parse(b []byte) (int, error) {
	used := 0
	for {
		rest := b[used:]
		if !p.header {
			if len(rest) < 19 {
				return used, nil
			}
			if !bytes.Equal(rest[:11], copySignature) {
				return used, errors.New("postgres: COPY sent no binary header")
			}
			ext := int(binary.BigEndian.Uint32(rest[15:]))
			if len(rest) < 19+ext {
				return used, nil
			}
			used += 19 + ext
			p.header = true
			continue
		}
		if len(rest) < 2 {
			return used, nil
		}
		if p.trailer {
			return used, errors.New("postgres: COPY sent data after its trailer")
		}
		nf := int(int16(binary.BigEndian.Uint16(rest)))
		if nf == -1 {
			p.trailer = true
			return used + 2, nil
		}
		if nf < 0 {
			return used, fmt.Errorf("postgres: COPY tuple of %d fields", nf)
		}
		if cap(p.vals) < nf {
			p.vals = make([][]byte, nf)
		}
		vals := p.vals[:nf]
		pos := 2
		for i := 0; i < nf; i++ {
			if len(rest) < pos+4 {
				return used, nil
			}
			l := int(int32(binary.BigEndian.Uint32(rest[pos:])))
			pos += 4
			switch {
			case l == -1:
				vals[i] = nil
			case l < 0:
				return used, fmt.Errorf("postgres: COPY field of length %d", l)
			default:
				if len(rest) < pos+l {
					return used, nil
				}
				vals[i] = rest[pos : pos+l : pos+l]
				pos += l
			}
		}
		if err := p.h(vals); err != nil {
			return used, err
		}
		used += pos
	}
}
