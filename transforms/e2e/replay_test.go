// Package e2e runs configs/segment-replay.yaml's source and transforms over
// the bundled sample archive. It is apart from package transforms so that
// package's tests do not depend on the file source.
package e2e

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"

	"github.com/backfillhq/backfill/internal/testkit/acktest"
	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
	_ "github.com/backfillhq/backfill/sources/file"
	"github.com/backfillhq/backfill/transforms"
)

func TestSegmentReplayConfig(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	reg := config.NewRegistry()
	for _, p := range config.Default.All() {
		if p.Kind != config.SinkKind {
			reg.Register(*p)
		}
	}
	// the file sink's config, as far as this test needs it
	reg.Register(acktest.DiscardPlugin("file", config.NewSpec("test", config.String("path", ""))))
	cfg, err := config.LoadFile("../../configs/segment-replay.yaml", config.LoadOptions{Registry: reg,
		LookupEnv: func(k string) (string, bool) {
			if k == "SEGMENT_ARCHIVE" {
				return "../../configs/sample/archive.ndjson.gz", true
			}
			return "", false
		}})
	if err != nil {
		t.Fatal(err)
	}
	env := &pipeline.Env{Name: cfg.Name, Alloc: mem, Logger: slog.New(slog.DiscardHandler)}
	var chain []pipeline.Transform
	for _, pc := range cfg.Transforms {
		p, _ := reg.Lookup(config.TransformKind, pc.Name)
		tr, err := p.NewTransform(pc.Conf, env)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, tr)
	}
	sp, _ := reg.Lookup(config.SourceKind, cfg.Source.Name)
	src, err := sp.NewSource(cfg.Source.Conf, env)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	splits, err := src.Splits(ctx)
	if err != nil || len(splits) != 1 {
		t.Fatalf("splits %v, %v", splits, err)
	}
	rd, err := src.Open(ctx, splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	var kept, rejected int64
	seen := map[string]bool{}
	for {
		b, err := rd.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range chain {
			if err := tr.Apply(ctx, b); err != nil {
				b.Release()
				t.Fatal(err)
			}
		}
		rejected += int64(len(b.Rejects))
		if b.Record != nil {
			rec := b.Record
			kept += rec.NumRows()
			for _, f := range rec.Schema().Fields() {
				switch f.Name {
				case "sentAt", "version", "receivedAt", "projectId", "_metadata", "channel", "writeKey":
					t.Errorf("%s survived strip", f.Name)
				}
			}
			ts := rec.Column(rec.Schema().FieldIndices("timestamp")[0])
			if !arrow.TypeEqual(ts.DataType(), transforms.TimestampType) {
				t.Errorf("timestamp is %s", ts.DataType())
			}
			ids := rec.Column(rec.Schema().FieldIndices("messageId")[0])
			integ := rec.Column(rec.Schema().FieldIndices("integrations")[0]).(*record.JSONArray)
			for i := 0; i < int(rec.NumRows()); i++ {
				id := ids.ValueStr(i)
				if !uuid.MatchString(id) || seen[id] {
					t.Fatalf("messageId %q is not a fresh UUID", id)
				}
				seen[id] = true
				if integ.Value(i) != `{"All":false,"Amplitude":true,"Warehouses":{"all":false}}` {
					t.Fatalf("integrations = %s", integ.Value(i))
				}
			}
		}
		if b.End-b.Start != b.NumRows()+int64(len(b.Rejects))+b.Filtered {
			t.Errorf("batch %d-%d does not account for every row", b.Start, b.End)
		}
		b.Release()
	}
	if kept+rejected != 1000 || kept < 990 {
		t.Errorf("kept %d, rejected %d of 1000", kept, rejected)
	}
}
