package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// object is one S3 object to read: a split's Info.
type object struct {
	Bucket     string
	Key        string
	Size       int64
	ETag       string            // pins every read to the listed version
	Partitions map[string]string // hive key=value parts of the key
}

func (o *object) url() string { return "s3://" + o.Bucket + "/" + o.Key }

// rangeReader is an io.ReaderAt over an S3 object: each miss is a ranged
// GET. Parquet reads the footer, then each column chunk sequentially in
// buffer-sized pieces; a read that continues where an earlier one ended is
// treated as sequential and fetched with read-ahead, cached in a small LRU
// whose total is capped, so memory stays bounded whatever the object size.
// Random reads (footer, small chunks) fetch exactly what is asked.
type rangeReader struct {
	ctx       context.Context
	s         *Source
	obj       *object
	readAhead int64
	maxBuf    int64

	mu      sync.Mutex
	streams int      // sequential streams the reader said it reads side by side
	blocks  []*block // least recently used first
	bufd    int64    // bytes held in blocks
	ends    [64]int64
	endsN   int

	gets  atomic.Int64 // ranged GETs issued
	bytes atomic.Int64 // bytes received
}

type block struct {
	off  int64
	data []byte
}

func newRangeReader(ctx context.Context, s *Source, obj *object) *rangeReader {
	return &rangeReader{ctx: ctx, s: s, obj: obj, readAhead: s.readAhead, maxBuf: s.maxBuffered}
}

// ReadStreams is told by the Parquet reader how many column chunks it
// reads side by side, so the read-ahead is shared among them from the
// first read, not only once each holds a block.
func (r *rangeReader) ReadStreams(n int) {
	r.mu.Lock()
	r.streams = n
	r.mu.Unlock()
}

func (r *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", r.obj.url(), off)
	}
	if off >= r.obj.Size {
		return 0, io.EOF
	}
	want := p
	var eof error
	if rem := r.obj.Size - off; int64(len(want)) > rem {
		want, eof = want[:rem], io.EOF
	}
	end := off + int64(len(want))
	r.mu.Lock()
	if b := r.lookup(off); b != nil {
		n := copy(want, b.data[off-b.off:])
		if off+int64(n) == b.off+int64(len(b.data)) {
			// A sequential reader never comes back: free the block now.
			r.remove(b)
		}
		r.noteEnd(off + int64(n))
		r.mu.Unlock()
		if n == len(want) {
			return n, eof
		}
		// The block held the start: fetch only the rest, which
		// continues where the block ended (sequential).
		m, err := r.ReadAt(want[n:], off+int64(n))
		if err != nil && err != io.EOF {
			return n + m, err
		}
		return n + m, eof
	}
	sequential := r.isEnd(off)
	r.noteEnd(end)
	// Share the cap among the streams being read ahead (one block each),
	// so many columns read side by side shrink the read-ahead instead of
	// evicting each other's blocks before they are used. The reader may
	// have said how many there will be before they have all started. With
	// many columns the share falls under a read's size, and reads are
	// fetched as they are, without read-ahead: each byte still once.
	ahead := min(r.readAhead, r.maxBuf/int64(max(len(r.blocks), r.streams)+1))
	r.mu.Unlock()

	fetch := int64(len(want))
	if sequential && fetch < ahead {
		fetch = min(ahead, r.obj.Size-off)
	}
	if fetch == int64(len(want)) {
		if err := r.get(want, off); err != nil {
			return 0, err
		}
		return len(want), eof
	}
	buf := make([]byte, fetch)
	if err := r.get(buf, off); err != nil {
		return 0, err
	}
	copy(want, buf)
	r.mu.Lock()
	r.insert(&block{off: off, data: buf})
	r.mu.Unlock()
	return len(want), eof
}

// lookup finds a block holding off and marks it recently used.
func (r *rangeReader) lookup(off int64) *block {
	for i, b := range r.blocks {
		if b.off <= off && off < b.off+int64(len(b.data)) {
			copy(r.blocks[i:], r.blocks[i+1:])
			r.blocks[len(r.blocks)-1] = b
			return b
		}
	}
	return nil
}

func (r *rangeReader) remove(b *block) {
	for i, x := range r.blocks {
		if x == b {
			r.blocks = append(r.blocks[:i], r.blocks[i+1:]...)
			r.bufd -= int64(len(b.data))
			return
		}
	}
}

func (r *rangeReader) insert(b *block) {
	r.blocks = append(r.blocks, b)
	r.bufd += int64(len(b.data))
	for r.bufd > r.maxBuf && len(r.blocks) > 1 {
		r.bufd -= int64(len(r.blocks[0].data))
		r.blocks[0] = nil
		r.blocks = r.blocks[1:]
	}
}

func (r *rangeReader) noteEnd(end int64) {
	r.ends[r.endsN%len(r.ends)] = end
	r.endsN++
}

func (r *rangeReader) isEnd(off int64) bool {
	for i := 0; i < min(r.endsN, len(r.ends)); i++ {
		if r.ends[i] == off {
			return true
		}
	}
	return false
}

// get fills buf from the object at off with one ranged GET, retrying
// (from where it stopped) when the body breaks off: the SDK retries a
// failed request, not a connection reset halfway through a body.
func (r *rangeReader) get(buf []byte, off int64) error {
	done := 0
	var last error
	for attempt := 0; attempt < r.s.maxAttempts && done < len(buf); attempt++ {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		start := off + int64(done)
		out, err := r.s.client.GetObject(r.ctx, &s3.GetObjectInput{
			Bucket:  aws.String(r.obj.Bucket),
			Key:     aws.String(r.obj.Key),
			Range:   aws.String(fmt.Sprintf("bytes=%d-%d", start, off+int64(len(buf))-1)),
			IfMatch: ifMatch(r.obj.ETag),
		})
		if err != nil {
			return r.s.objectErr("read", r.obj, err)
		}
		r.gets.Add(1)
		n, err := io.ReadFull(out.Body, buf[done:])
		out.Body.Close()
		done += n
		r.bytes.Add(int64(n))
		if err != nil {
			last = err
		}
	}
	if done < len(buf) {
		return fmt.Errorf("s3 source: reading %s bytes %d-%d: gave up after %d attempts: %w",
			r.obj.url(), off, off+int64(len(buf))-1, r.s.maxAttempts, last)
	}
	return nil
}

func ifMatch(etag string) *string {
	if etag == "" {
		return nil
	}
	return aws.String(etag)
}

// resumableBody streams a whole object and, when the connection breaks
// mid-body, reopens it at the byte where it stopped (pinned to the same
// ETag), so a reset costs one request, not the object.
type resumableBody struct {
	ctx      context.Context
	s        *Source
	obj      *object
	body     io.ReadCloser
	pos      int64
	failures int
}

func (s *Source) openBody(ctx context.Context, obj *object) (io.ReadCloser, error) {
	b := &resumableBody{ctx: ctx, s: s, obj: obj}
	if err := b.open(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *resumableBody) open() error {
	in := &s3.GetObjectInput{Bucket: aws.String(b.obj.Bucket), Key: aws.String(b.obj.Key), IfMatch: ifMatch(b.obj.ETag)}
	if b.pos > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", b.pos))
	}
	out, err := b.s.client.GetObject(b.ctx, in)
	if err != nil {
		return b.s.objectErr("read", b.obj, err)
	}
	b.body = out.Body
	return nil
}

func (b *resumableBody) Read(p []byte) (int, error) {
	for {
		if b.body == nil {
			return 0, errors.New("s3 source: read after close")
		}
		n, err := b.body.Read(p)
		b.pos += int64(n)
		if err == nil || err == io.EOF {
			return n, err
		}
		if b.ctx.Err() != nil {
			return n, b.ctx.Err()
		}
		b.failures++
		if b.failures >= b.s.maxAttempts || (b.obj.Size > 0 && b.pos >= b.obj.Size) {
			return n, fmt.Errorf("s3 source: reading %s at byte %d: %w", b.obj.url(), b.pos, err)
		}
		b.body.Close()
		b.body = nil
		if oerr := b.open(); oerr != nil {
			return n, oerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (b *resumableBody) Close() error {
	if b.body == nil {
		return nil
	}
	err := b.body.Close()
	b.body = nil
	return err
}
