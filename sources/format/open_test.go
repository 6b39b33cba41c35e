package format

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline"
)

// A panic while opening (a bug in a decoder, say) comes back as a
// *pipeline.PanicError, and what in.Open returned is closed: a long run
// over many files must not keep one handle per split that panicked.
func TestOpenPanicClosesTheInput(t *testing.T) {
	for _, name := range []string{"a.csv", "a.csv.gz", "a.tsv", "a.ndjson"} {
		t.Run(name, func(t *testing.T) {
			mem := arrowtest.CheckedMem(t)
			body := &panickyBody{}
			in := Input{Name: name, Open: func(context.Context) (io.ReadCloser, error) { return body, nil }}
			rr, err := Open(context.Background(), in, name, Options{}, pipeline.ReadOptions{}, mem)
			var pe *pipeline.PanicError
			if !errors.As(err, &pe) || pe.Where != "opening" || !strings.Contains(err.Error(), "decoder bug") || rr != nil {
				t.Fatalf("reader %v, error %v", rr, err)
			}
			if body.closed != 1 {
				t.Fatalf("input closed %d times", body.closed)
			}
		})
	}
}

// panickyBody panics on its first Read.
type panickyBody struct{ closed int }

func (b *panickyBody) Read([]byte) (int, error) { panic("decoder bug") }
func (b *panickyBody) Close() error             { b.closed++; return nil }

// A zstd frame declares its window, and the decoder allocates it before
// decoding a byte: a 10-byte file asking for 512 MB (klauspost's limit)
// used to get it, per reading worker. Windows over what `zstd -d` takes
// without --memory (128 MB) are refused; smaller ones decode.
func TestZstdWindowIsBounded(t *testing.T) {
	for _, tc := range []struct {
		desc  byte // the window descriptor: exponent and mantissa
		alloc uint64
		err   string
	}{
		{0x50, 8 << 20, ""},                     // 1 MB
		{0x88, maxZstdWindow + 8<<20, ""},       // 128 MB
		{0x90, 8 << 20, "window size exceeded"}, // 256 MB
		{0x98, 8 << 20, "window size exceeded"}, // 512 MB
		{0xf8, 8 << 20, "window size exceeded"}, // 3.75 TB
	} {
		frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, tc.desc}
		const size = 100000 // one last block, RLE of 100,000 'x'
		h := uint32(1) | 1<<1 | size<<3
		frame = append(frame, byte(h), byte(h>>8), byte(h>>16), 'x')
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		res, err := readAll(t, Input{Name: "w.ndjson.zst", Open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(frame)), nil
		}}, DefaultOptions(), pipeline.ReadOptions{Columns: pipeline.AllColumns}, arrowtest.CheckedMem(t))
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		if tc.err == "" && (err != nil || len(res.rejects) != 1 || !strings.Contains(res.rejects[0].Reason, "not a JSON object")) {
			t.Errorf("window %#x: %v, %+v", tc.desc, err, res)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("window %#x: err %v, want %q", tc.desc, err, tc.err)
		}
		if alloc > tc.alloc {
			t.Errorf("window %#x: %d MB allocated", tc.desc, alloc>>20)
		}
	}
}
