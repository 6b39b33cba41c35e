// Command client sends the benchmark's Parquet file to a receiver, either
// through backfill's segment sink or through analytics-go v3.3.0, and prints
// one JSON line: rows, seconds, events/s. Run it under /usr/bin/time -v for
// CPU time and peak RSS.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/backfillhq/backfill/bench/internal/cpuprof"
	"github.com/backfillhq/backfill/bench/internal/events"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/sinks/segment"
)

type result struct {
	Mode     string  `json:"mode"`
	Rows     int64   `json:"rows"`
	Sent     int64   `json:"sent"`
	Failed   int64   `json:"failed"`
	Seconds  float64 `json:"seconds"`
	EventsPS float64 `json:"events_per_s"`
	Received int64   `json:"received"` // the receiver's message count delta
}

func main() {
	mode := flag.String("mode", "backfill", "backfill, analytics or read (read Parquet only)")
	path := flag.String("file", "events.parquet", "Parquet input")
	url := flag.String("url", "", "receiver base URL")
	gz := flag.Bool("gzip", true, "backfill: gzip bodies")
	level := flag.Int("level", 1, "backfill: gzip level")
	conc := flag.Int("concurrency", 4, "backfill: requests in flight")
	batch := flag.Int("batch", 100, "analytics: BatchSize")
	repeat := flag.Int("repeat", 1, "backfill: send the file this many times (as distinct splits), to check memory stays flat")
	prof := flag.String("cpuprofile", "", "write a CPU profile here")
	memProf := flag.String("memprofile", "", "write an allocation profile here at the end")
	flag.Parse()
	stopProfile := cpuprof.Start(*prof)
	defer stopProfile()

	before := received(*url)
	start := time.Now()
	var res result
	var err error
	switch *mode {
	case "backfill":
		res, err = runBackfill(*path, *url, *gz, *level, *conc, *repeat)
	case "analytics":
		res, err = runAnalytics(*path, *url, *batch)
	case "read":
		res, err = runRead(*path)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		stopProfile()
		log.Fatal(err)
	}
	res.Seconds = time.Since(start).Seconds()
	res.EventsPS = float64(res.Rows) / res.Seconds
	if *url != "" {
		res.Received = received(*url) - before
	}
	json.NewEncoder(os.Stdout).Encode(res)
	if *memProf != "" {
		f, err := os.Create(*memProf)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		runtime.GC() // the profile is as of the last collection
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			log.Fatal(err)
		}
	}
}

func received(url string) int64 {
	if url == "" {
		return 0
	}
	resp, err := http.Get(url + "/stats")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var st struct{ Messages int64 }
	json.NewDecoder(resp.Body).Decode(&st)
	return st.Messages
}

func runRead(path string) (result, error) {
	var rows int64
	err := events.Read(context.Background(), path, 8192, func(rec arrow.Record) error {
		rows += rec.NumRows()
		rec.Release()
		return nil
	})
	return result{Mode: "read", Rows: rows}, err
}

func runBackfill(path, url string, gz bool, level, conc, repeat int) (result, error) {
	res := result{Mode: fmt.Sprintf("backfill gzip=%v", gz)}
	var failed atomic.Int64
	opts := segment.DefaultOptions()
	opts.Endpoint, opts.WriteKey, opts.Gzip, opts.GzipLevel, opts.Concurrency = url, "bench", gz, level, conc
	s, err := segment.New(opts, &pipeline.Env{Name: "bench", Version: "bench"})
	if err != nil {
		return res, err
	}
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		return res, err
	}
	acct := &failures{n: &failed}
	var rows int64
	for r := 0; r < repeat && err == nil; r++ {
		split, offset := fmt.Sprintf("events.parquet#%d", r), int64(0)
		// As the runner does: the next batch is decoded while this one
		// is encoded.
		recs := make(chan arrow.Record)
		werr := make(chan error, 1)
		go func() {
			var err error
			for rec := range recs {
				if err != nil {
					rec.Release()
					continue
				}
				b := pipeline.NewBatch(split, offset, rec)
				offset += rec.NumRows()
				rows += rec.NumRows()
				b.SetAccount(acct)
				err = s.Write(ctx, b)
			}
			werr <- err
		}()
		err = events.Read(ctx, path, 8192, func(rec arrow.Record) error {
			recs <- rec
			return nil
		})
		close(recs)
		if e := <-werr; err == nil {
			err = e
		}
	}
	if cerr := s.Close(ctx); err == nil {
		err = cerr
	}
	st := s.Stats()
	res.Rows, res.Sent, res.Failed = rows, st["events_sent"], failed.Load()+st["dead_lettered"]
	return res, err
}

// failures is every batch's account, as the engine's would be: it counts
// the batches that failed.
type failures struct{ n *atomic.Int64 }

func (f *failures) Delivered(int)                                     {}
func (f *failures) DeadLetter(context.Context, pipeline.Reject) error { return nil }
func (f *failures) Done(err error) {
	if err != nil {
		f.n.Add(1)
	}
}

type callback struct{ ok, failed atomic.Int64 }

func (c *callback) Success(analytics.Message)        { c.ok.Add(1) }
func (c *callback) Failure(analytics.Message, error) { c.failed.Add(1) }

type quiet struct{}

func (quiet) Logf(string, ...interface{})   {}
func (quiet) Errorf(string, ...interface{}) {}

// texts reads a string column, plain or dictionary-encoded (as the
// reader gives repetitive columns).
type texts struct {
	s *array.String
	d *array.Dictionary
}

func textsOf(a arrow.Array) texts {
	if d, ok := a.(*array.Dictionary); ok {
		return texts{s: d.Dictionary().(*array.String), d: d}
	}
	return texts{s: a.(*array.String)}
}

func (t texts) Value(i int) string {
	if t.d != nil {
		return t.s.Value(t.d.GetValueIndex(i))
	}
	return t.s.Value(i)
}

// runAnalytics sends the same rows the way analytics-go's users do: one
// Track per row, properties in a map, through Enqueue.
func runAnalytics(path, url string, batchSize int) (result, error) {
	res := result{Mode: fmt.Sprintf("analytics-go batch=%d", batchSize)}
	cb := &callback{}
	c, err := analytics.NewWithConfig("bench", analytics.Config{Endpoint: url, BatchSize: batchSize,
		Interval: 5 * time.Second, Callback: cb, Logger: quiet{}})
	if err != nil {
		return res, err
	}
	var rows int64
	err = events.Read(context.Background(), path, 8192, func(rec arrow.Record) error {
		defer rec.Release()
		str := func(i int) texts { return textsOf(rec.Column(i)) }
		ts := rec.Column(4).(*array.Timestamp)
		rev := rec.Column(6).(*array.Float64)
		qty := rec.Column(8).(*array.Int64)
		for i := 0; i < int(rec.NumRows()); i++ {
			err := c.Enqueue(analytics.Track{
				Event:       str(1).Value(i),
				UserId:      str(2).Value(i),
				AnonymousId: str(3).Value(i),
				Timestamp:   time.UnixMilli(int64(ts.Value(i))).UTC(),
				Properties: analytics.NewProperties().
					Set("orderId", str(5).Value(i)).
					Set("revenue", rev.Value(i)).
					Set("currency", str(7).Value(i)).
					Set("quantity", qty.Value(i)).
					Set("coupon", str(9).Value(i)),
				Context: &analytics.Context{IP: net.ParseIP(str(10).Value(i)),
					Page: analytics.PageInfo{Path: str(11).Value(i)}},
			})
			if err != nil {
				return err
			}
			rows++
		}
		return nil
	})
	if cerr := c.Close(); err == nil && cerr != nil && cerr != io.EOF {
		err = cerr
	}
	res.Rows, res.Sent, res.Failed = rows, cb.ok.Load(), cb.failed.Load()
	return res, err
}
