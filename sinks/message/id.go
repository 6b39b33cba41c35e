package message

import (
	"crypto/sha1"
	"hash"
	"strconv"
)

// namespace is Namespace as bytes.
var namespace = [16]byte{0x6f, 0x9b, 0x00, 0xa7, 0xd8, 0x4d, 0x5e, 0x90, 0xbb, 0x23, 0x34, 0xb9, 0xf5, 0x0d, 0x62, 0xf7}

const hexDigits = "0123456789abcdef"

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
	var h uuidHasher
	return h.append(dst, name)
}

// uuidHasher derives UUIDs with a reused SHA-1 state, so the per-row id
// costs one hash and no allocation.
type uuidHasher struct {
	h   hash.Hash
	sum []byte
}

func (u *uuidHasher) append(dst, name []byte) []byte {
	if u.h == nil {
		u.h = sha1.New()
		u.sum = make([]byte, 0, sha1.Size)
	}
	u.h.Reset()
	u.h.Write(namespace[:])
	u.h.Write(name)
	sum := u.h.Sum(u.sum[:0])
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[sum[i]>>4], hexDigits[sum[i]&0xf])
	}
	return dst
}
