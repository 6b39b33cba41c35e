package message

import (
	"crypto/sha1"
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
	sum := sha1.Sum(in)
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	out := [36]byte{8: '-', 13: '-', 18: '-', 23: '-'}
	for i, at := range uuidHexAt {
		p := hexPairs[sum[i]]
		out[at], out[at+1] = p[0], p[1]
	}
	return append(dst, out[:]...)
}
