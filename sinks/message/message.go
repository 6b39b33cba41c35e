// Package message turns records that follow the record contract (columns
// named by their path in the Segment message) into Segment JSON messages,
// validated against Segment's rules before anything is sent.
//
// The encoder picks one writer per column once per schema and appends every
// row into a reused buffer: no maps, no reflection and no allocation per
// row on the fast path. Rows that Segment would refuse (or accept with a 200
// and silently drop) come back as rejects with a specific reason.
package message

import (
	"github.com/backfillhq/backfill/pipeline"
)

// Namespace is the UUID namespace of derived message ids: the version-5
// UUID of the URL "https://github.com/backfillhq/backfill/message-id".
const Namespace = "6f9b00a7-d84d-5e90-bb23-34b9f50d62f7"

// DefaultMaxMessageBytes is Segment's per-message limit as analytics-go
// enforces it.
const DefaultMaxMessageBytes = 32000

// Options configure an Encoder.
type Options struct {
	// Pipeline is the pipeline's name: the salt of derived message ids, so
	// two pipelines loading the same rows do not collide.
	Pipeline string
	// Library and Version fill context.library.{name,version}; Library
	// defaults to "backfill".
	Library string
	Version string
	// MaxMessageBytes is the largest encoded message; 0 means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
	// IDColumns are the columns whose values identify a row, for derived
	// message ids that survive a re-partitioned input. Empty means the
	// split ID and row offset identify a row. Internal columns ("_key")
	// may be named here; they are still never encoded.
	IDColumns []string
}

// Encoder encodes batches into Segment messages. It is not safe for
// concurrent use: use one per goroutine (or a sync.Pool).
type Encoder struct {
	opts    Options
	library []byte // the encoded context.library object
	max     int

	plans []*plan // recent schemas' plans, most recent first
	buf   []byte  // the message being encoded, reused across rows
	scr   []byte  // derived-id SHA-1 input: namespace, name prefix, row part
	scrN  int     // len of the per-batch prefix in scr
	// lastRow is the row whose digits end scr at rowEnd (-1: none this
	// batch), for counting up to the next row's.
	lastRow int64
	rowEnd  int
	mid     midstate // SHA-1 of scr's prefix blocks
	stack   []frame  // open objects while a plan's steps run, reused
	scr2    []byte   // a root field encoded again to see if it is empty, reused

	batch      *pipeline.Batch // the batch being encoded
	failCol    string          // why the row being encoded failed
	failReason string
}

// NewEncoder returns an encoder for opts.
func NewEncoder(opts Options) *Encoder {
	if opts.Library == "" {
		opts.Library = "backfill"
	}
	e := &Encoder{opts: opts, max: opts.MaxMessageBytes}
	if e.max <= 0 {
		e.max = DefaultMaxMessageBytes
	}
	e.library = append(e.library, `{"name":`...)
	e.library = appendString(e.library, opts.Library)
	if opts.Version != "" {
		e.library = append(e.library, `,"version":`...)
		e.library = appendString(e.library, opts.Version)
	}
	e.library = append(e.library, '}')
	e.buf = make([]byte, 0, 4096)
	return e
}

// Encode encodes every row of b.Record (a nil record encodes nothing). For
// each valid row, in order, it calls emit with the record row index and the
// complete JSON message on one line (no sentAt: the sender sets it per
// request); msg is valid only during the call. Rows breaking Segment's rules
// are returned as rejects (Stage "sink", Row = the split row offset, Column
// when one column is to blame, a specific Reason, Message = the encoded JSON
// when there is one) and are not emitted. An error from emit stops the
// encoding and is returned with the rejects found so far. A panic while
// encoding (a bug met on unusual data) is returned as a
// *pipeline.PanicError, with no rejects: the batch fails instead of the
// process. Encode neither acks nor releases b.
func (e *Encoder) Encode(b *pipeline.Batch, emit func(row int, msg []byte) error) (rejects []pipeline.Reject, err error) {
	panicked := true // an error from emit may itself wrap a PanicError
	err = pipeline.Safely("encoding messages", func() (err error) {
		rejects, err = e.encode(b, emit)
		panicked = false
		return err
	})
	if panicked {
		// The plan that panicked may be what is wrong: build it again.
		e.plans, e.batch, e.stack = nil, nil, e.stack[:0]
		return nil, err
	}
	return rejects, err
}

// DeriveID is the message id of a row identified by its split and row
// offset: a name-based UUID (version 5, SHA-1) in the backfill namespace
// over "PIPELINE\x00SPLIT\x00ROW" (ROW in decimal). A retry, a resumed run
// and a rerun of the same pipeline over the same input give the same id,
// so Segment deduplicates them. With Options.IDColumns the name is
// "PIPELINE\x00key" followed, per column, by "\x00" and the value's JSON
// encoding ("null" when null) instead. Anyone can recompute an id, e.g. in
// Python: uuid.uuid5(uuid.UUID(Namespace), f"{pipeline}\0{split}\0{row}").
func DeriveID(pipelineName, split string, row int64) string {
	var scr []byte
	scr = appendSplitName(scr, pipelineName, split, row)
	return string(appendUUID5(nil, scr))
}
