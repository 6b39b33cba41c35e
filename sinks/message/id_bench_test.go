package message

import (
	"crypto/sha1"
	"strconv"
	"testing"
)

// BenchmarkDerivedIDHash hashes a row's id input after a prefix like a
// long S3 key's (109 bytes: one whole block hashed once per batch) with
// the midstate, and with sha1.Sum over the whole input.
func BenchmarkDerivedIDHash(b *testing.B) {
	prefix := append(namespace[:], "bench\x00s3://acme-analytics-archive/segment-logs/workspace=abc123/2024/01/15/1705276800000.events.parquet\x00"...)
	var m midstate
	m.reset(prefix)
	in := append([]byte(nil), prefix...)
	b.Run("midstate", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			in = strconv.AppendInt(in[:len(prefix)], int64(i), 10)
			_ = m.sumOf(in)
		}
	})
	b.Run("sha1.Sum", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			in = strconv.AppendInt(in[:len(prefix)], int64(i), 10)
			_ = sha1.Sum(in)
		}
	})
}
