package message

import (
	"crypto/sha1"
	"encoding"
	"hash"
	"strconv"
)

// namespace is Namespace as bytes.
var namespace = [16]byte{0x6f, 0x9b, 0x00, 0xa7, 0xd8, 0x4d, 0x5e, 0x90, 0xbb, 0x23, 0x34, 0xb9, 0xf5, 0x0d, 0x62, 0xf7}

const hexDigits = "0123456789abcdef"

// hexPairs[b] is b's two lowercase hex digits: one table load per byte
// instead of two shifts and two loads.
var hexPairs = func() (t [256][2]byte) {
	for i := range t {
		t[i] = [2]byte{hexDigits[i>>4], hexDigits[i&0xf]}
	}
	return t
}()

// uuidHexAt[i] is where byte i's hex digits go in the 36-character form.
var uuidHexAt = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// appendSplitName appends the name of a row identified by split and offset.
func appendSplitName(dst []byte, pipelineName, split string, row int64) []byte {
	dst = append(dst, pipelineName...)
	dst = append(dst, 0)
	dst = append(dst, split...)
	dst = append(dst, 0)
	return strconv.AppendInt(dst, row, 10)
}

// appendUUID5 appends the version-5 UUID of name in the backfill namespace.
func appendUUID5(dst, name []byte) []byte {
	in := make([]byte, 0, len(namespace)+len(name))
	in = append(append(in, namespace[:]...), name...)
	return appendUUID5Of(dst, in)
}

// appendUUID5Of appends the version-5 UUID whose SHA-1 input (namespace
// then name) is in. Callers keep the namespace at the front of a reused
// buffer, so a row's id is one sha1.Sum over one contiguous slice: no
// hash.Hash interface, no Reset/Write/Sum calls, no allocation.
func appendUUID5Of(dst, in []byte) []byte {
	return appendUUID5Sum(dst, sha1.Sum(in))
}

// appendUUID5Sum appends the version-5 UUID of a SHA-1 sum.
func appendUUID5Sum(dst []byte, sum [sha1.Size]byte) []byte {
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	out := [36]byte{8: '-', 13: '-', 18: '-', 23: '-'}
	for i, at := range uuidHexAt {
		p := hexPairs[sum[i]]
		out[at], out[at+1] = p[0], p[1]
	}
	return append(dst, out[:]...)
}

// midstate hashes the whole 64-byte blocks of a per-batch SHA-1 prefix
// once, so each row's id hashes only the rest: a long split ID (an S3 key)
// makes the prefix span a block or more, which every row would hash again.
type midstate struct {
	h     hash.Hash
	state []byte // h's state after the prefix's whole blocks
	n     int    // bytes of the prefix those blocks hold; 0: none
	sum   []byte
}

// reset takes the prefix of a new batch.
func (m *midstate) reset(prefix []byte) {
	m.n = len(prefix) / sha1.BlockSize * sha1.BlockSize
	if m.n == 0 {
		return
	}
	if m.h == nil {
		m.h = sha1.New()
	}
	m.h.Reset()
	m.h.Write(prefix[:m.n])
	var err error
	if m.state, err = m.h.(encoding.BinaryAppender).AppendBinary(m.state[:0]); err != nil {
		m.n = 0 // cannot happen with crypto/sha1; hash the whole input instead
	}
}

// sum is SHA-1 of in, whose first m.n bytes are the prefix given to reset.
func (m *midstate) sumOf(in []byte) (out [sha1.Size]byte) {
	if m.n == 0 {
		return sha1.Sum(in)
	}
	if err := m.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(m.state); err != nil {
		return sha1.Sum(in)
	}
	m.h.Write(in[m.n:])
	m.sum = m.h.Sum(m.sum[:0])
	copy(out[:], m.sum)
	return out
}
