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
	"encoding/json"
	"time"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// Namespace is the UUID namespace of derived message ids: the version-5
// UUID of the URL "https://github.com/backfillhq/backfill/message-id".
const Namespace = "6f9b00a7-d84d-5e90-bb23-34b9f50d62f7"

// SentAtStamp is the placeholder Options.SentAt writes: a time in the
// layout every sentAt is written in (StampLayout, whose reference time it
// is), so the sender copies a time over its bytes (AppendStamp's, made
// once per attempt) without moving the message.
const SentAtStamp = StampLayout

// sentAtMember is what Options.SentAt appends before the closing brace.
const sentAtMember = `"sentAt":"` + SentAtStamp + `"`

// StampLayout is the time layout of sentAt: RFC 3339, UTC, milliseconds.
const StampLayout = "2006-01-02T15:04:05.000Z"

// AppendStamp appends t as a sentAt value (StampLayout): always
// len(SentAtStamp) bytes for the years 0000-9999. It appends: formatting
// writes past what it keeps, so do not aim it at bytes to overwrite.
func AppendStamp(dst []byte, t time.Time) []byte { return t.UTC().AppendFormat(dst, StampLayout) }

// WithoutSentAt returns msg without the sentAt member Options.SentAt
// added (its value at off, as SentAtOffset gave it), appended to dst: the
// message as the data made it, for a dead letter that a redrive may send
// again with a fresh sentAt.
func WithoutSentAt(dst, msg []byte, off int) []byte {
	start := off - len(`"sentAt":"`)
	if start > 1 && msg[start-1] == ',' {
		start--
	}
	dst = append(dst, msg[:start]...)
	return append(dst, msg[off+len(SentAtStamp)+1:]...)
}

// DefaultMaxMessageBytes is Segment's per-message limit as analytics-go
// enforces it.
const DefaultMaxMessageBytes = 32000

// Options configure an Encoder.
type Options struct {
	// Pipeline is the pipeline's name: the salt of derived message ids, so
	// two pipelines loading the same rows do not collide.
	Pipeline string
	// Library and Version fill context.library.{name,version}; Library
	// defaults to "backfill". A row whose data has a context.library (a
	// context.library column or sub-path columns, or a library key in a
	// context column) keeps it: it says where the event came from, and
	// destinations use it to tell platforms apart. Only rows without one
	// get this tool's.
	Library string
	Version string
	// OwnLibrary sets this tool's context.library on every row, replacing
	// the data's (a sink's `library: backfill`).
	OwnLibrary bool
	// SentAt ends each message with a sentAt member holding SentAtStamp,
	// a placeholder of the right width for the sender to overwrite with
	// the time of each attempt (SentAtOffset says where it is). A row
	// whose data has its own sentAt keeps it instead and gets none. Off,
	// the data's sentAt is still written; a file sink's lines carry no
	// time of sending.
	SentAt bool
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
	sentAtOff  int // SentAtOffset of the message being emitted
	idOff      int // MessageIDOffset of the message being emitted
}

// SentAtOffset is, during an emit, where the sentAt placeholder's value
// (SentAtStamp, len(SentAtStamp) bytes) starts in the message emitted, or
// -1 when the message has none: Options.SentAt is off, or the row's data
// has its own sentAt.
func (e *Encoder) SentAtOffset() int { return e.sentAtOff }

// MessageIDOffset is, during an emit, where the messageId's value starts in
// the message emitted: the opening quote of a JSON string (IDAt reads it).
// A sink that keeps a delivery ledger keeps it beside the message, to
// report which messageId each delivered row carried.
func (e *Encoder) MessageIDOffset() int { return e.idOff }

// IDAt returns the JSON string starting at buf[off] (a MessageIDOffset),
// unquoted: a slice of buf, or a copy when the string has escapes. It
// returns nil when no string starts there.
func IDAt(buf []byte, off int) []byte {
	if off < 0 || off >= len(buf) || buf[off] != '"' {
		return nil
	}
	escaped := false
	for i := off + 1; i < len(buf); i++ {
		switch buf[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			if !escaped {
				return buf[off+1 : i]
			}
			var s string
			if json.Unmarshal(buf[off:i+1], &s) != nil {
				return nil
			}
			return []byte(s)
		}
	}
	return nil
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
// complete JSON message on one line, with the data's sentAt if it has one,
// else with a placeholder the sender overwrites (Options.SentAt) or none;
// msg is valid only during the call. Rows breaking Segment's rules are
// returned as rejects (Stage "sink", Row = the split row offset, Column
// when one column is to blame, a specific Reason, Message = the encoded
// JSON, without a placeholder sentAt, when there is one) and are not
// emitted. An error from emit stops the encoding and is returned with the
// rejects found so far. A panic while encoding (a bug met on unusual data)
// is returned as a *pipeline.PanicError, with no rejects: the batch fails
// instead of the process. Encode neither acks nor releases b.
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

// AppendSyncID appends the messageId of a `sync` pipeline's row: the
// version-5 UUID of the pipeline's name, the row's primary key and the
// hash of its content. A changed row gets a new id, so Segment does not
// drop the update as a copy of the last send; the same change sent again
// (a resumed run) keeps its id, and Segment drops the copy.
func AppendSyncID(dst []byte, pipelineName string, key, content []byte) []byte {
	name := make([]byte, 0, len(pipelineName)+len(key)+len(content)+8)
	name = append(name, pipelineName...)
	name = append(name, 0, 's', 'y', 'n', 'c', 0)
	name = append(name, key...)
	name = append(name, 0)
	name = append(name, content...)
	return appendUUID5(dst, name)
}

// The values of a sink's `library` field (LibraryField).
const (
	LibraryKeep     = "keep"     // the data's context.library; this tool's where it has none
	LibraryBackfill = "backfill" // this tool's on every message (Options.OwnLibrary)
)

// LibraryField is the `library` field the segment and file sinks share:
// whose context.library a message carries.
func LibraryField() *config.Field {
	return config.String("library", "context.library: keep leaves the data's (an archive's analytics.js 4.1.0) and sets "+
		"backfill's only where a row has none; backfill sets backfill's on every message").
		Default(LibraryKeep).Enum(LibraryKeep, LibraryBackfill)
}
