package s3

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/pipeline"
)

// A peek reads one object, whatever the layout: its listing stops at the
// first object, a Parquet footer is a ranged read, the hive layout adds
// the partition columns; and reading records them on every batch too.
func TestPeekColumnsReadsOneObject(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "lake")
	objs := map[string][]byte{}
	for _, day := range []string{"2024-01-01", "2024-01-02", "2024-01-03"} {
		objs["hive/type=track/day="+day+"/part.parquet"] = parquetBytes(t, 100, 50, 10)
	}
	objs["segment-logs/srcA/1704067200000/a.gz"] = gzipLines(t, `{"type":"track","userId":"u","properties":{"x":1}}`)
	objs["segment-logs/srcA/1704153600000/b.gz"] = gzipLines(t, `{"type":"track","late":true}`)
	objs["keys/a.csv"] = []byte("id,email\n1,a@b.c\n")
	objs["keys/b.csv"] = []byte("id,mail\n1,a@b.c\n")
	srv.PutParallel(t, "lake", objs)
	cnt := srv.Counting(t)
	base := minioConf(srv, cnt.URL) + "bucket: lake\n"
	ctx := context.Background()

	for _, tt := range []struct {
		conf, where      string
		names            []string
		maxLists, maxGet int64
	}{
		{"prefix: hive/\nlayout: hive\n", "s3://lake/hive/type=track/day=2024-01-01/part.parquet",
			[]string{"id", "event", "amount", "pad", "_partition.day", "_partition.type"}, 1, 2},
		{"layout: segment-archive\n", "s3://lake/segment-logs/srcA/1704067200000/a.gz",
			[]string{"type", "userId", "properties"}, 3, 1},
		{"keys: [keys/a.csv, keys/b.csv]\n", "s3://lake/keys/a.csv", []string{"id", "email"}, 0, 1},
	} {
		cnt.Reset()
		src := newSource(t, nil, base+tt.conf)
		if !src.PeekRemote() {
			t.Fatal("an S3 peek is a request")
		}
		names, where, err := src.PeekColumns(ctx)
		if err != nil || where != tt.where || !reflect.DeepEqual(names, tt.names) {
			t.Fatalf("%s: %v %q %v", tt.conf, names, where, err)
		}
		st := cnt.Stats()
		if st.Lists > tt.maxLists || st.Gets < 1 || st.Gets > tt.maxGet {
			t.Fatalf("%s: %+v", tt.conf, st)
		}
		for _, r := range st.Ranges {
			if !strings.HasPrefix(r, "bytes=") {
				t.Fatalf("%s: a GET of the whole object: %+v", tt.conf, st)
			}
		}
	}

	// Reading: the partition columns join the data's columns.
	mem := arrowtest.CheckedMem(t)
	src, splits := splitsOf(t, mem, base+"prefix: hive/\nlayout: hive\n")
	res := readSplit(t, src, splits[0], pipeline.ReadOptions{Columns: pipeline.Columns{Names: []string{"id", "_partition.day"}}})
	if got := pipeline.DataColumns(res.schemas[0]); !reflect.DeepEqual(got, []string{"id", "event", "amount", "pad", "_partition.day", "_partition.type"}) {
		t.Fatalf("data columns %v", got)
	}
}
