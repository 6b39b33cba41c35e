package s3

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/parquet/file"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/pipeline"
)

func TestParseReceivedDay(t *testing.T) {
	day := time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC)
	for _, s := range []string{strconv.FormatInt(day.UnixMilli(), 10), strconv.FormatInt(day.Unix(), 10)} {
		got, ok := parseReceivedDay(s)
		if !ok || !got.Equal(day) {
			t.Errorf("parseReceivedDay(%s) = %v %v", s, got, ok)
		}
	}
	if _, ok := parseReceivedDay("2024-03-05"); ok {
		t.Error("a non-numeric folder is not a received day")
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ body, want string }{
		{"bucket: b\nkeys: [a]\nmanifest: m", "not both"},
		{"bucket: b\npattern: 'a/**x/*'", "whole path segment"},
		{"bucket: b\nlayout: hive\nfrom: 2024-01-01", "segment-archive"},
		{"bucket: b\nlayout: segment-archive\nfrom: 2024-02-01\nto: 2024-01-01", "before from"},
		{"bucket: b\nfrom: yesterday", "not a day"},
		{"bucket: b\naccess_key_id: AKIA", "go together"},
		{"bucket: b\nlayout: hive\npartitions: {day: {since: 1}}", "unknown key"},
		{"bucket: b\nanonymous: true\nprofile: p", "unsigned"},
	}
	for _, c := range cases {
		conf, err := loadConf(t, c.body)
		if err == nil {
			_, err = New(conf, &pipeline.Env{})
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error with %q", c.body, err, c.want)
		}
	}
}

func TestListingPagesGlobAndOrder(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "lake")
	objs := map[string][]byte{}
	var want []string
	for i := 0; i < 300; i++ {
		k := fmt.Sprintf("data/d%02d/sub%d/part-%03d.parquet", i%10, i%3, i)
		objs[k] = []byte("x")
		want = append(want, "s3://lake/"+k)
	}
	objs["data/d00/_SUCCESS"] = []byte("ok")
	objs["data/d01/notes.txt"] = []byte("text")
	objs["data/d02/empty.parquet"] = nil // zero bytes: no rows
	objs["other/x.parquet"] = []byte("x")
	srv.PutParallel(t, "lake", objs)
	slices.Sort(want)

	counter := srv.Counting(t)
	mem := arrowtest.CheckedMem(t)
	_, splits := splitsOf(t, mem, minioConf(srv, counter.URL)+"bucket: lake\nprefix: data/\npattern: '**/*.parquet'\npage_size: 7")
	if got := splitIDs(splits); !slices.Equal(got, want) {
		t.Fatalf("got %d splits (first %v), want %d", len(got), got[:min(3, len(got))], len(want))
	}
	if st := counter.Stats(); st.Lists < 300/7 {
		t.Errorf("%d list calls: paging with page_size 7 should take at least %d", st.Lists, 300/7)
	}
	if splits[0].Bytes != 1 || splits[0].Rows != -1 {
		t.Errorf("split sizes: %+v", splits[0])
	}

	// No pattern: hidden/marker and empty files are skipped, the rest kept.
	_, splits = splitsOf(t, mem, minioConf(srv, "")+"bucket: lake\nprefix: data/d01/")
	if !slices.Contains(splitIDs(splits), "s3://lake/data/d01/notes.txt") || len(splits) != 31 {
		t.Errorf("d01 listing: %v", splitIDs(splits))
	}
	_, splits = splitsOf(t, mem, minioConf(srv, "")+"bucket: lake\nprefix: data/\npattern: 'd0[0-2]/sub1/*.parquet'")
	for _, s := range splits {
		if !strings.Contains(s.ID, "/sub1/") || !(strings.Contains(s.ID, "/d00/") || strings.Contains(s.ID, "/d01/") || strings.Contains(s.ID, "/d02/")) {
			t.Errorf("pattern let %s through", s.ID)
		}
	}
	if len(splits) != 30 {
		t.Errorf("pattern matched %d objects, want 30", len(splits))
	}
}

func TestParquetReadAndResumeSkipsRowGroups(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "pqt")
	const n, rg = 40_000, 5_000
	data := parquetBytes(t, n, rg, 100)
	srv.Put(t, "pqt", "orders/2024/part-0.parquet", data)
	counter := srv.Counting(t)

	mem := arrowtest.CheckedMem(t)
	src, splits := splitsOf(t, mem, minioConf(srv, counter.URL)+"bucket: pqt\nprefix: orders/\nread_ahead: 65536")
	if len(splits) != 1 || splits[0].ID != "s3://pqt/orders/2024/part-0.parquet" || splits[0].Bytes != int64(len(data)) {
		t.Fatalf("splits: %+v", splits)
	}
	counter.Reset()
	res := readSplit(t, src, splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 3000}, "id")
	if res.rows != n || len(res.cols["id"]) != n {
		t.Fatalf("read %d rows, want %d", res.rows, n)
	}
	for i, v := range res.cols["id"] {
		if v != strconv.Itoa(i) {
			t.Fatalf("row %d has id %s", i, v)
		}
	}
	full := counter.Stats()
	// Every byte of the object is needed once; read-ahead may overshoot a
	// column chunk's end a little, never by a whole copy.
	if full.GetBytes < int64(len(data))*9/10 || full.GetBytes > int64(len(data))*3/2 {
		t.Errorf("full read fetched %d bytes of a %d-byte object", full.GetBytes, len(data))
	}
	for _, r := range full.Ranges {
		if !strings.HasPrefix(r, "bytes=") {
			t.Errorf("Parquet GET without a Range: %q", r)
		}
	}

	// Resume in row group 6 (of 8): row groups 0-5 must not be fetched.
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	rg6 := pf.MetaData().RowGroup(6)
	cc, err := rg6.ColumnChunk(0)
	if err != nil {
		t.Fatal(err)
	}
	skipBefore := cc.DataPageOffset()
	if d := cc.DictionaryPageOffset(); d > 0 && d < skipBefore {
		skipBefore = d
	}
	pf.Close()
	counter.Reset()
	const offset = 6*rg + 1234
	res = readSplit(t, src, splits[0], pipeline.ReadOptions{Offset: offset, Columns: pipeline.AllColumns, BatchRows: 3000}, "id")
	if res.first != offset || res.rows != n-offset || res.cols["id"][0] != strconv.Itoa(offset) {
		t.Fatalf("resume at %d: first %d, rows %d, first id %s", offset, res.first, res.rows, res.cols["id"][0])
	}
	st := counter.Stats()
	for _, r := range st.Ranges {
		var from, to int64
		if _, err := fmt.Sscanf(r, "bytes=%d-%d", &from, &to); err != nil {
			t.Fatalf("range %q: %v", r, err)
		}
		if from < skipBefore && to > 64<<10 /* footer reads are at the end */ && to < skipBefore {
			t.Errorf("resume fetched %s, inside the skipped row groups (they end at %d)", r, skipBefore)
		}
	}
	if limit := int64(len(data)) - skipBefore + 128<<10; st.GetBytes > limit {
		t.Errorf("resume fetched %d bytes; the row groups needed are %d bytes", st.GetBytes, int64(len(data))-skipBefore)
	}
	t.Logf("full read: %d GETs, %d bytes; resume at row %d: %d GETs, %d bytes (object %d bytes)",
		full.Gets, full.GetBytes, offset, st.Gets, st.GetBytes, len(data))

	// Projection: only the id column's chunks are fetched.
	counter.Reset()
	res = readSplit(t, src, splits[0], pipeline.ReadOptions{Columns: pipeline.Columns{Names: []string{"id"}}, BatchRows: 8192}, "id")
	if res.rows != n {
		t.Fatalf("projected read: %d rows", res.rows)
	}
	if st := counter.Stats(); st.GetBytes > int64(len(data))/4 {
		t.Errorf("reading one small column fetched %d of %d bytes", st.GetBytes, len(data))
	}
}

func TestRangeReaderAgainstObject(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "raw")
	data := make([]byte, 1<<20+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	srv.Put(t, "raw", "blob.bin", data)
	mem := arrowtest.CheckedMem(t)
	src, splits := splitsOf(t, mem, minioConf(srv, "")+"bucket: raw\nread_ahead: 65536\nmax_buffered: 131072")
	ra := newRangeReader(context.Background(), src, splits[0].Info.(*object))
	buf := make([]byte, 4096)
	// Sequential small reads: read-ahead makes them cost few GETs.
	for off := int64(0); off < 512<<10; off += 4096 {
		n, err := ra.ReadAt(buf, off)
		if err != nil || n != 4096 || !bytes.Equal(buf, data[off:off+4096]) {
			t.Fatalf("ReadAt(%d) = %d, %v or wrong bytes", off, n, err)
		}
	}
	if g := ra.gets.Load(); g > 10 {
		t.Errorf("128 sequential 4 KiB reads took %d GETs", g)
	}
	// The tail: short read with io.EOF, and past the end.
	n, err := ra.ReadAt(buf, int64(len(data))-10)
	if n != 10 || err == nil || !bytes.Equal(buf[:10], data[len(data)-10:]) {
		t.Errorf("tail read: %d, %v", n, err)
	}
	if n, err := ra.ReadAt(buf, int64(len(data))+5); n != 0 || err == nil {
		t.Errorf("read past the end: %d, %v", n, err)
	}
	if ra.bufd > 131072 {
		t.Errorf("cache holds %d bytes, over max_buffered", ra.bufd)
	}

	// A read that starts in a read-ahead block and runs past it takes the
	// block's part and fetches only the rest: no byte is fetched twice.
	ra = newRangeReader(context.Background(), src, splits[0].Info.(*object))
	big := make([]byte, 40<<10)
	for _, r := range []struct{ off, n int64 }{{0, 4 << 10}, {4 << 10, 4 << 10}, {60 << 10, 40 << 10}, {100 << 10, 32 << 10}} {
		if n, err := ra.ReadAt(big[:r.n], r.off); err != nil || int64(n) != r.n || !bytes.Equal(big[:r.n], data[r.off:r.off+r.n]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v or wrong bytes", r.off, r.n, n, err)
		}
	}
	// 4 KiB exact; 64 KiB read ahead from 4 KiB; the third read's rest,
	// 68 KiB on, read ahead 64 KiB, which holds the fourth.
	if g, b := ra.gets.Load(), ra.bytes.Load(); g != 3 || b != 132<<10 {
		t.Errorf("%d GETs, %d bytes fetched; want 3 GETs, %d bytes", g, b, 132<<10)
	}
}

func TestManifest(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "unload")
	srv.Put(t, "unload", "orders/0000_part_00.json", []byte("{\"id\":1}\n{\"id\":2}\n"))
	srv.Put(t, "unload", "orders/0001_part_00.json", []byte("{\"id\":3}\n"))
	srv.Put(t, "unload", "orders/manifest", []byte(`{"entries":[
  {"url":"s3://unload/orders/0001_part_00.json","mandatory":true},
  {"url":"s3://unload/orders/0000_part_00.json","mandatory":true},
  {"url":"s3://unload/orders/0002_part_00.json","mandatory":false}]}`))
	srv.Put(t, "unload", "orders/bad-manifest", []byte(`{"entries":[{"url":"s3://unload/orders/missing.json","mandatory":true}]}`))
	mem := arrowtest.CheckedMem(t)
	src, splits := splitsOf(t, mem, minioConf(srv, "")+"bucket: unload\nmanifest: orders/manifest\nformat: ndjson")
	want := []string{"s3://unload/orders/0000_part_00.json", "s3://unload/orders/0001_part_00.json"}
	if got := splitIDs(splits); !slices.Equal(got, want) {
		t.Fatalf("manifest splits %v", got)
	}
	var rows int64
	for _, sp := range splits {
		rows += readSplit(t, src, sp, pipeline.ReadOptions{Columns: pipeline.AllColumns}).rows
	}
	if rows != 3 {
		t.Errorf("read %d rows, want 3", rows)
	}
	src = newSource(t, mem, minioConf(srv, "")+"bucket: unload\nmanifest: s3://unload/orders/bad-manifest")
	_, err := src.Splits(context.Background())
	if err == nil || !strings.Contains(err.Error(), "s3://unload/orders/missing.json") || !strings.Contains(err.Error(), "NoSuchKey") {
		t.Errorf("missing mandatory entry: %v", err)
	}
}

func TestSegmentArchive(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "seg")
	day := func(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC) }
	msg := func(id string) string {
		return fmt.Sprintf(`{"type":"track","event":"Order Completed","messageId":%q,"userId":"u1","properties":{"total":9.5}}`, id)
	}
	objs := map[string][]byte{}
	// Segment writes milliseconds; an older source here uses seconds.
	for d := 1; d <= 5; d++ {
		ms := strconv.FormatInt(day(2024, 1, d).UnixMilli(), 10)
		objs["logs/segment-logs/srcA/"+ms+"/1704067200000.abc.gz"] = gzipLines(t, msg(fmt.Sprintf("a%d-1", d)), msg(fmt.Sprintf("a%d-2", d)))
		s := strconv.FormatInt(day(2024, 1, d).Unix(), 10)
		objs["logs/segment-logs/srcB/"+s+"/part.gz"] = gzipLines(t, msg(fmt.Sprintf("b%d", d)))
	}
	objs["logs/segment-logs/srcA/not-a-day/x.gz"] = gzipLines(t, msg("never"))
	srv.PutParallel(t, "seg", objs)
	counter := srv.Counting(t)

	mem := arrowtest.CheckedMem(t)
	base := minioConf(srv, counter.URL) + "bucket: seg\nprefix: logs\nlayout: segment-archive\n"
	src, splits := splitsOf(t, mem, base+"from: 2024-01-02\nto: 2024-01-03")
	if len(splits) != 4 {
		t.Fatalf("days 2-3 of two sources: got %v", splitIDs(splits))
	}
	// 1 listing of sources + 1 of days per source + 1 per selected day.
	if st := counter.Stats(); st.Lists != 1+2+4 {
		t.Errorf("%d list calls, want 7 (only the selected days are listed)", st.Lists)
	}
	var ids []string
	for _, sp := range splits {
		res := readSplit(t, src, sp, pipeline.ReadOptions{Columns: pipeline.AllColumns}, "messageId")
		ids = append(ids, res.cols["messageId"]...)
	}
	slices.Sort(ids)
	if want := []string{"a2-1", "a2-2", "a3-1", "a3-2", "b2", "b3"}; !slices.Equal(ids, want) {
		t.Errorf("messageIds %v, want %v", ids, want)
	}

	_, splits = splitsOf(t, mem, base+"source_ids: [srcB]\nfrom: 2024-01-05")
	if len(splits) != 1 || !strings.Contains(splits[0].ID, "/srcB/"+strconv.FormatInt(day(2024, 1, 5).Unix(), 10)+"/") {
		t.Errorf("srcB from Jan 5: %v", splitIDs(splits))
	}
	// Resume an archive file after its first line.
	src, splits = splitsOf(t, mem, base+"source_ids: [srcA]\nfrom: 2024-01-01\nto: 2024-01-01")
	res := readSplit(t, src, splits[0], pipeline.ReadOptions{Offset: 1, Columns: pipeline.AllColumns}, "messageId")
	if res.rows != 1 || res.cols["messageId"][0] != "a1-2" {
		t.Errorf("resume at 1: %+v", res.cols)
	}
}

func TestHivePartitions(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "dlake")
	objs := map[string][]byte{}
	small := parquetBytes(t, 10, 10, 4)
	for _, typ := range []string{"track", "identify"} {
		for d := 1; d <= 3; d++ {
			for _, hr := range []string{"5", "10"} {
				objs[fmt.Sprintf("segment-data/data/SRC/segment_type=%s/day=2024-01-0%d/hr=%s/part-0.parquet", typ, d, hr)] = small
			}
		}
	}
	srv.PutParallel(t, "dlake", objs)
	mem := arrowtest.CheckedMem(t)
	base := minioConf(srv, "") + "bucket: dlake\nprefix: segment-data/data/SRC/\nlayout: hive\n"
	src, splits := splitsOf(t, mem, base+"partitions:\n  segment_type: track\n  day: {from: 2024-01-02, to: 2024-01-03}\n  hr: {from: 6}")
	want := []string{
		"s3://dlake/segment-data/data/SRC/segment_type=track/day=2024-01-02/hr=10/part-0.parquet",
		"s3://dlake/segment-data/data/SRC/segment_type=track/day=2024-01-03/hr=10/part-0.parquet",
	}
	if got := splitIDs(splits); !slices.Equal(got, want) {
		t.Fatalf("filtered splits %v", got)
	}
	res := readSplit(t, src, splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns}, "id", "_partition.day", "_partition.segment_type", "_partition.hr")
	if res.rows != 10 || res.cols["_partition.day"][9] != "2024-01-02" || res.cols["_partition.segment_type"][0] != "track" || res.cols["_partition.hr"][0] != "10" {
		t.Errorf("partition columns: %v", res.cols)
	}
	// Projection that names one partition column and one file column.
	res = readSplit(t, src, splits[1], pipeline.ReadOptions{Columns: pipeline.Columns{Names: []string{"id", "_partition.day"}}}, "id", "_partition.day")
	if s := res.schemas[0]; s.NumFields() != 2 || res.cols["_partition.day"][0] != "2024-01-03" {
		t.Errorf("projected schema %s", s)
	}
	// Equality on a list of values, bare column names.
	src, splits = splitsOf(t, mem, base+"partition_prefix: ''\npartitions:\n  segment_type: [identify]\n  day: 2024-01-01")
	if len(splits) != 2 {
		t.Fatalf("identify on Jan 1: %v", splitIDs(splits))
	}
	res = readSplit(t, src, splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns}, "segment_type")
	if res.cols["segment_type"][0] != "identify" {
		t.Errorf("bare partition column: %v", res.cols)
	}
}

func TestErrorsNameBucketAndCredentials(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "private")
	srv.Put(t, "private", "secret/a.json", []byte("{}\n"))
	srv.Put(t, "private", "public/a.json", []byte("{\"ok\":true}\n"))
	srv.SetPolicy(t, "private", `{"Version":"2012-10-17","Statement":[
	 {"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::private/public/*"]},
	 {"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::private"],"Condition":{"StringLike":{"s3:prefix":["public/*"]}}}]}`)
	mem := arrowtest.CheckedMem(t)
	ctx := context.Background()

	splitsErr := func(body string) error {
		t.Helper()
		_, err := newSource(t, mem, body).Splits(ctx)
		if err == nil {
			t.Fatalf("no error for\n%s", body)
		}
		return err
	}
	check := func(err error, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		if strings.Contains(err.Error(), srv.SecretKey) {
			t.Errorf("error leaks the secret key: %v", err)
		}
	}

	err := splitsErr(minioConf(srv, "") + "bucket: nosuch\nprefix: x/")
	check(err, "s3://nosuch/x/", "NoSuchBucket", "static keys")

	wrong := fmt.Sprintf("endpoint: %s\npath_style: true\naccess_key_id: %s\nsecret_access_key: wrong-%s\n", srv.Endpoint, srv.AccessKey, srv.SecretKey[:4])
	err = splitsErr(wrong + "bucket: private\nmax_attempts: 1")
	check(err, "s3://private/", "SignatureDoesNotMatch", "static keys")
	if strings.Contains(err.Error(), "wrong-"+srv.SecretKey[:4]) {
		t.Errorf("error leaks the configured secret: %v", err)
	}

	err = splitsErr(minioConf(srv, "") + "bucket: private\nprefix: nothing-here/")
	check(err, "no objects matched", "s3://private/nothing-here/")

	anon := fmt.Sprintf("endpoint: %s\npath_style: true\nanonymous: true\n", srv.Endpoint)
	err = splitsErr(anon + "bucket: private\nprefix: secret/")
	check(err, "access denied", "s3://private/secret/", "anonymous")

	// The same anonymous client may read the public prefix.
	src := newSource(t, mem, anon+"bucket: private\nprefix: public/")
	splits, err := src.Splits(ctx)
	if err != nil || len(splits) != 1 {
		t.Fatalf("anonymous public listing: %v %v", splits, err)
	}
	if res := readSplit(t, src, splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns}); res.rows != 1 {
		t.Errorf("anonymous read: %d rows", res.rows)
	}
	// Keys that do not exist fail from Splits, naming the key.
	err = splitsErr(minioConf(srv, "") + "bucket: private\nkeys: [secret/missing.json]")
	check(err, "s3://private/secret/missing.json", "NoSuchKey")
}

// An object rewritten after listing: reading the listed version fails
// rather than mixing contents, and the split's version (its ETag, the same
// when listed again) changes, so a resumed run refuses progress saved on
// the old content.
func TestObjectRewritten(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "bkt")
	srv.Put(t, "bkt", "x.json", []byte("{\"v\":1}\n"))
	mem := arrowtest.CheckedMem(t)
	conf := minioConf(srv, "") + "bucket: bkt"
	src, splits := splitsOf(t, mem, conf)
	_, again := splitsOf(t, mem, conf)
	srv.Put(t, "bkt", "x.json", []byte("{\"v\":2}\n{\"v\":3}\n"))
	_, err := src.Open(context.Background(), splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns})
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("reading a replaced object: %v", err)
	}
	_, rewritten := splitsOf(t, mem, conf)
	v1, v2, v3 := splits[0].Version, again[0].Version, rewritten[0].Version
	if !strings.HasPrefix(v1, "etag ") || strings.Contains(v1, `"`) || v1 != v2 || v3 == v1 {
		t.Fatalf("versions: listed %q, listed again %q, after a rewrite %q", v1, v2, v3)
	}
}

func TestConnectionCutMidBodyResumes(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "cut")
	var lines []string
	for i := 0; i < 20000; i++ {
		lines = append(lines, fmt.Sprintf(`{"messageId":"m%d","n":%d,"pad":"%x"}`, i, i, i*7919))
	}
	gz := gzipLines(t, lines...)
	srv.Put(t, "cut", "logs/a.json.gz", gz)
	srv.Put(t, "cut", "pq/a.parquet", parquetBytes(t, 20000, 5000, 40))
	counter := srv.Counting(t)
	mem := arrowtest.CheckedMem(t)

	// NDJSON: one GET, cut twice; each retry asks for the rest only.
	src, splits := splitsOf(t, mem, minioConf(srv, counter.URL)+"bucket: cut\nprefix: logs/")
	counter.Reset()
	counter.CutNextGets(2, int64(len(gz))/3)
	res := readSplit(t, src, splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns}, "messageId")
	if res.rows != 20000 || res.cols["messageId"][19999] != "m19999" {
		t.Fatalf("read %d rows after cuts", res.rows)
	}
	st := counter.Stats()
	if st.Gets != 3 || st.Ranges[0] != "" || !strings.HasPrefix(st.Ranges[1], "bytes=") || st.GetBytes > int64(len(gz))+1024 {
		t.Errorf("cut NDJSON read: %d GETs %v, %d bytes of %d", st.Gets, st.Ranges, st.GetBytes, len(gz))
	}

	// Parquet: a cut ranged GET is retried from where it stopped.
	src, splits = splitsOf(t, mem, minioConf(srv, counter.URL)+"bucket: cut\nprefix: pq/")
	counter.Reset()
	counter.CutNextGets(3, 1000)
	res = readSplit(t, src, splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns}, "id")
	if res.rows != 20000 || res.cols["id"][19999] != "19999" {
		t.Fatalf("parquet read %d rows after cuts", res.rows)
	}
}

// Partition filters prune whole folders while listing: a folder whose
// value fails its condition is never listed, and what is read is the same
// as filtering a flat listing.
func TestHivePruningSkipsFolders(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "dlake")
	small := parquetBytes(t, 10, 10, 4)
	objs := map[string][]byte{"events/_SUCCESS": []byte("x")}
	for _, typ := range []string{"track", "identify", "page"} {
		for d := 1; d <= 4; d++ {
			for _, hr := range []string{"5", "10"} {
				objs[fmt.Sprintf("events/segment_type=%s/day=2024-01-0%d/hr=%s/part-0.parquet", typ, d, hr)] = small
			}
		}
	}
	// A value Hive escaped, and a file beside the partition folders.
	objs["events/segment_type=screen%20view/day=2024-01-02/hr=10/part-0.parquet"] = small
	objs["events/segment_type=track/stray.parquet"] = small
	srv.PutParallel(t, "dlake", objs)
	cnt := srv.Counting(t)
	mem := arrowtest.CheckedMem(t)
	base := minioConf(srv, cnt.URL) + "bucket: dlake\nprefix: events/\nlayout: hive\n"

	src, splits := splitsOf(t, mem, base+"partitions:\n  segment_type: [track, screen view]\n  day: {from: 2024-01-02, to: 2024-01-03}")
	var want []string
	for _, typ := range []string{"screen%20view", "track"} {
		for d := 2; d <= 3; d++ {
			for _, hr := range []string{"10", "5"} {
				if k := fmt.Sprintf("events/segment_type=%s/day=2024-01-0%d/hr=%s/part-0.parquet", typ, d, hr); objs[k] != nil {
					want = append(want, "s3://dlake/"+k)
				}
			}
		}
	}
	if got := splitIDs(splits); !slices.Equal(got, want) {
		t.Fatalf("splits\n got %v\nwant %v", got, want)
	}
	st := cnt.Stats()
	for _, p := range st.Prefixes {
		if strings.Contains(p, "identify") || strings.Contains(p, "page") || strings.Contains(p, "day=2024-01-01") || strings.Contains(p, "day=2024-01-04") {
			t.Errorf("listed %q, which the filters rule out", p)
		}
	}
	// identify and page, then days 1 and 4 of track; one listing for
	// events/, one per kept type, one per kept day (listed flat: both keys
	// are decided there).
	if src.prunedDirs != 4 {
		t.Errorf("pruned %d folders, want 4", src.prunedDirs)
	}
	if len(st.Prefixes) != 6 {
		t.Errorf("%d listings for a 3-level layout: %v", len(st.Prefixes), st.Prefixes)
	}
	// A key fixed by the pattern's literal start is decided before the walk:
	// the day folders under it are listed flat, in one call.
	cnt.Reset()
	_, splits = splitsOf(t, mem, base+"pattern: 'segment_type=page/**'\npartitions: {segment_type: page}")
	if len(splits) != 8 {
		t.Errorf("page splits: %v", splitIDs(splits))
	}
	if p := cnt.Stats().Prefixes; len(p) != 1 || p[0] != "events/segment_type=page/" {
		t.Errorf("listings %q, want one flat listing of events/segment_type=page/", p)
	}
}

// Parquet footers give the progress its total before any data is read:
// every object's rows when the listing is small, an estimate from a sample
// of footers when it is large, nothing when the objects are not all
// Parquet.
func TestParquetFootersCountRows(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "pqrows")
	sizes := []int64{3000, 500, 12000, 7000, 1000, 9000}
	var total int64
	objs := map[string][]byte{}
	for i, n := range sizes {
		objs[fmt.Sprintf("t/part-%d.parquet", i)] = parquetBytes(t, n, 1000, 40)
		total += n
	}
	objs["t/part-9.parquet"] = []byte("not parquet") // its footer cannot be read
	srv.PutParallel(t, "pqrows", objs)
	mem := arrowtest.CheckedMem(t)
	conf := minioConf(srv, "") + "bucket: pqrows\nprefix: t/\n"

	src, splits := splitsOf(t, mem, conf)
	for i, sp := range splits[:len(sizes)] {
		if sp.Rows != sizes[i] {
			t.Errorf("%s: Rows %d, want %d", sp.ID, sp.Rows, sizes[i])
		}
	}
	if bad := splits[len(sizes)]; bad.Rows != -1 {
		t.Errorf("%s: Rows %d, want -1 (unknown)", bad.ID, bad.Rows)
	}
	// The unreadable object counts at the others' rows per byte: 11 bytes.
	if est := src.EstimatedRows(); est < total || est > total+5 {
		t.Errorf("estimate %d, want %d and a few rows for the bad object", est, total)
	}

	// A large listing reads a sample: no split knows its rows, and the
	// estimate is the sample's rows per byte times all the bytes.
	defer func(all, sample int) { footersAll, footersSample = all, sample }(footersAll, footersSample)
	footersAll, footersSample = 3, 3
	src, splits = splitsOf(t, mem, conf)
	for _, sp := range splits {
		if sp.Rows != -1 {
			t.Errorf("%s: Rows %d from a sample", sp.ID, sp.Rows)
		}
	}
	if est := src.EstimatedRows(); est < total*8/10 || est > total*12/10 {
		t.Errorf("sampled estimate %d, want about %d", est, total)
	}

	// Not all Parquet: no estimate.
	srv.Put(t, "pqrows", "t/notes.csv", []byte("a\n1\n"))
	src, _ = splitsOf(t, mem, conf)
	if est := src.EstimatedRows(); est != 0 {
		t.Errorf("estimate %d with a CSV object listed", est)
	}
}
