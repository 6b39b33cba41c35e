package bigquery

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"google.golang.org/grpc/codes"

	"github.com/backfillhq/backfill/internal/testkit/acktest"
	"github.com/backfillhq/backfill/internal/testkit/bqtest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"go.uber.org/goleak"
)

// The source talks gRPC and HTTP to the in-process BigQuery servers: every
// test must leave no goroutine of the client, the servers or the reader
// running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memState is a StateBag in memory; the same bag across two sources plays
// a checkpoint carried from one run to the next.
// memState is the state a run would persist, with a reader for asserts.
type memState struct{ *pipeline.MemoryState }

func newState() *memState { return &memState{pipeline.NewMemoryState(nil, nil)} }

func (s *memState) get(k string) string { v, _ := s.Get(k); return v }

func testRegistry() *config.Registry {
	r := config.NewRegistry()
	r.Register(Plugins()...)
	r.Register(acktest.DiscardPlugin("nop", nil))
	return r
}

// load builds the source from the YAML body of `source: bigquery:`, with
// the test server's endpoints added.
func load(t *testing.T, srv *bqtest.Server, body string) (*config.Conf, error) {
	t.Helper()
	var b strings.Builder
	b.WriteString("name: bq-test\nsource:\n  bigquery:\n")
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		b.WriteString("    " + l + "\n")
	}
	if srv != nil {
		fmt.Fprintf(&b, "    endpoint: %s\n    storage_endpoint: %s\n    insecure: true\n    no_auth: true\n", srv.URL, srv.GRPCAddr)
	}
	b.WriteString("sink:\n  nop: {}\n")
	cfg, err := config.Load("test.yaml", []byte(b.String()), config.LoadOptions{Registry: testRegistry()})
	if err != nil {
		return nil, err
	}
	return cfg.Source.Conf, nil
}

func newSource(t *testing.T, srv *bqtest.Server, body string, st *memState, mem memory.Allocator) *Source {
	t.Helper()
	conf, err := load(t, srv, body)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	src, err := New(conf, &pipeline.Env{Name: "bq-test", Alloc: mem, State: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s := src.(*Source)
	s.backoff = func(int) time.Duration { return time.Millisecond }
	t.Cleanup(func() { s.Close() })
	return s
}

// events is a table of n rows: id, event, ts (TIMESTAMP), one per minute.
func events(mem memory.Allocator, n int, firstID int64) arrow.Record {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "event", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		id := firstID + int64(i)
		b.Field(0).(*array.Int64Builder).Append(id)
		b.Field(1).(*array.StringBuilder).Append([]string{"a", "b", "c"}[id%3])
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(base.Add(time.Duration(id) * time.Minute).UnixMicro()))
	}
	return b.NewRecord()
}

// readSplit reads a split from offset to the end, checking that batches
// are contiguous, and returns the ids read.
func readSplit(t *testing.T, src *Source, sp pipeline.Split, opts pipeline.ReadOptions) ([]int64, error) {
	t.Helper()
	rd, err := src.Open(context.Background(), sp, opts)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var ids []int64
	next := opts.Offset
	for {
		b, err := rd.Next(context.Background())
		if err == io.EOF {
			return ids, nil
		}
		if err != nil {
			return ids, err
		}
		if b.Start != next || b.End != b.Start+b.NumRows() {
			t.Errorf("split %s: batch [%d,%d) with %d rows after offset %d", sp.ID, b.Start, b.End, b.NumRows(), next)
		}
		if opts.BatchRows > 0 && b.NumRows() > int64(opts.BatchRows) {
			t.Errorf("batch of %d rows, more than BatchRows %d", b.NumRows(), opts.BatchRows)
		}
		next = b.End
		col := b.Record.Column(b.Record.Schema().FieldIndices("id")[0]).(*array.Int64)
		for i := 0; i < col.Len(); i++ {
			ids = append(ids, col.Value(i))
		}
		b.Ack(nil)
		b.Release()
	}
}

// readAll reads every split in parallel from offset 0 (or offsets[id]).
func readAll(t *testing.T, src *Source, offsets map[string]int64) []int64 {
	t.Helper()
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatalf("Splits: %v", err)
	}
	var mu sync.Mutex
	var all []int64
	var wg sync.WaitGroup
	for _, sp := range splits {
		wg.Add(1)
		go func(sp pipeline.Split) {
			defer wg.Done()
			ids, err := readSplit(t, src, sp, pipeline.ReadOptions{Offset: offsets[sp.ID], Columns: pipeline.AllColumns, BatchRows: 3})
			if err != nil {
				t.Errorf("split %s: %v", sp.ID, err)
			}
			mu.Lock()
			all = append(all, ids...)
			mu.Unlock()
		}(sp)
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return all
}

func wantIDs(t *testing.T, got []int64, want ...int64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ids read:\n got %v\nwant %v", got, want)
	}
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// eventsServer starts a BigQuery test server holding table (n rows of
// events; none when table is ""), and a checked allocator asserted empty
// after everything the test opened is closed (cleanups run last first).
func eventsServer(t *testing.T, table string, n int) (*bqtest.Server, *memory.CheckedAllocator) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	srv := bqtest.New(t)
	if table != "" {
		rec := events(memory.NewGoAllocator(), n, 0)
		srv.AddTable(table, rec)
		rec.Release()
	}
	return srv, mem
}

func noRESTSurprises(t *testing.T, srv *bqtest.Server) {
	t.Helper()
	c := srv.Counts()
	if c.TabledataList != 0 || c.Unknown != 0 {
		t.Errorf("unexpected REST calls: %+v", c)
	}
}

func TestTableStreamsInParallel(t *testing.T) {
	srv, mem := eventsServer(t, "proj.web.tracks", 20)

	st := newState()
	src := newSource(t, srv, "table: proj.web.tracks\nmax_streams: 3", st, mem)
	wantIDs(t, readAll(t, src, nil), seq(0, 20)...)

	c := srv.Counts()
	if c.CreateReadSession != 1 || c.ReadRows != 3 || c.TablesGet != 1 {
		t.Errorf("calls: %+v; want 1 session, 3 ReadRows (one per stream), 1 tables.get", c)
	}
	noRESTSurprises(t, srv)
	req := srv.SessionRequests()[0]
	if req.GetParent() != "projects/proj" || req.GetReadSession().GetTable() != "projects/proj/datasets/web/tables/tracks" {
		t.Errorf("session request parent %q table %q", req.GetParent(), req.GetReadSession().GetTable())
	}
	snap := req.GetReadSession().GetTableModifiers().GetSnapshotTime().AsTime()
	if snap.IsZero() || st.get(keySnapshot) != snap.Format(time.RFC3339Nano) {
		t.Errorf("snapshot %v not stored in state (%q)", snap, st.get(keySnapshot))
	}
	if req.GetMaxStreamCount() != 3 {
		t.Errorf("max_stream_count %d", req.GetMaxStreamCount())
	}
}

func TestProjectionAndWherePushedDown(t *testing.T) {
	srv, mem := eventsServer(t, "proj.web.tracks", 12)

	src := newSource(t, srv, "table: proj.web.tracks\ncolumns: [id, event]\nwhere: \"event = 'b'\"", newState(), mem)
	wantIDs(t, readAll(t, src, nil), 1, 4, 7, 10)
	ro := srv.SessionRequests()[0].GetReadSession().GetReadOptions()
	if fmt.Sprint(ro.GetSelectedFields()) != "[id event]" || ro.GetRowRestriction() != "(event = 'b')" {
		t.Errorf("read options sent: fields %v restriction %q", ro.GetSelectedFields(), ro.GetRowRestriction())
	}

	// Without `columns`, the pipeline's projection is pushed down.
	src2 := newSource(t, srv, "table: proj.web.tracks", newState(), mem)
	src2.SetColumns(pipeline.Columns{Names: []string{"id"}})
	wantIDs(t, readAll(t, src2, nil), seq(0, 12)...)
	if f := srv.SessionRequests()[1].GetReadSession().GetReadOptions().GetSelectedFields(); fmt.Sprint(f) != "[id]" {
		t.Errorf("pipeline projection not sent: %v", f)
	}
	// A column the pipeline needs but the session does not read is a clear error.
	splits, _ := src2.Splits(context.Background())
	_, err := src2.Open(context.Background(), splits[0], pipeline.ReadOptions{Columns: pipeline.Columns{Names: []string{"id", "ts"}}})
	if err == nil || !strings.Contains(err.Error(), `column "ts"`) {
		t.Errorf("want a missing column error, got %v", err)
	}
}

func TestResumeMidStream(t *testing.T) {
	srv, mem := eventsServer(t, "proj.web.tracks", 30)
	st := newState()

	// Run 1 reads 5 rows of the first stream, acknowledges them, and dies.
	src := newSource(t, srv, "table: proj.web.tracks", st, mem)
	splits, err := src.Splits(context.Background())
	if err != nil || len(splits) != 3 {
		t.Fatalf("splits %v, %v", splits, err)
	}
	if n := src.EstimatedRows(); n != 30 {
		t.Errorf("the session's row estimate is %d, want 30", n)
	}
	rd, err := src.Open(context.Background(), splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 3})
	if err != nil {
		t.Fatal(err)
	}
	var acked int64
	for acked < 5 { // the server sends 4 rows a response: stop inside the second one
		b, err := rd.Next(context.Background())
		if err != nil || b.Start != acked {
			t.Fatalf("batch %v at %d: %v", b, acked, err)
		}
		acked = b.End
		b.Release()
	}
	rd.Close()
	src.Close()
	snap := st.get(keySnapshot)

	// Run 2 reuses the session (same split ids) and starts stream 0 at 5.
	src2 := newSource(t, srv, "table: proj.web.tracks", st, mem)
	got := readAll(t, src2, map[string]int64{splits[0].ID: acked})
	wantIDs(t, got, seq(acked, 30)...)
	splits2, _ := src2.Splits(context.Background())
	if splits2[0].ID != splits[0].ID || st.get(keySnapshot) != snap {
		t.Errorf("resume changed split ids (%s vs %s) or snapshot", splits2[0].ID, splits[0].ID)
	}
	if n := src2.EstimatedRows(); n != 30 {
		t.Errorf("the resumed session's row estimate is %d, want 30 (kept in the state)", n)
	}
	if c := srv.Counts(); c.CreateReadSession != 1 {
		t.Errorf("resume created a new session: %+v", c)
	}
}

func TestTransientErrorsRetriedPermanentNot(t *testing.T) {
	srv, mem := eventsServer(t, "proj.web.tracks", 30)

	src := newSource(t, srv, "table: proj.web.tracks", newState(), mem)
	if _, err := src.Splits(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Fail(bqtest.Failure{StreamIndex: 1, After: 1, Code: codes.Unavailable, Times: 2})
	srv.Fail(bqtest.Failure{StreamIndex: 2, After: 0, Code: codes.ResourceExhausted, Times: 1})
	wantIDs(t, readAll(t, src, nil), seq(0, 30)...)
	if c := srv.Counts(); c.ReadRows != 3+2+1 {
		t.Errorf("ReadRows calls %d, want 6 (3 streams + 3 reopenings)", c.ReadRows)
	}

	// A permanent error fails the split at once, naming the stream.
	srv.Fail(bqtest.Failure{StreamIndex: 0, After: 1, Code: codes.InvalidArgument, Times: 1})
	before := srv.Counts().ReadRows
	splits, _ := src.Splits(context.Background())
	ids, err := readSplit(t, src, splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 100})
	if err == nil || !strings.Contains(err.Error(), "streams/0") || !strings.Contains(err.Error(), "injected") {
		t.Errorf("want a permanent stream error, got %v", err)
	}
	if len(ids) != 4 || srv.Counts().ReadRows != before+1 {
		t.Errorf("permanent error: read %d rows, %d calls", len(ids), srv.Counts().ReadRows-before)
	}
}

func TestSessionExpired(t *testing.T) {
	srv, mem := eventsServer(t, "proj.web.tracks", 9)
	srv.SessionTTL = time.Minute // shorter than the reuse margin
	st := newState()
	src := newSource(t, srv, "table: proj.web.tracks", st, mem)
	first, err := src.Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	snap := st.get(keySnapshot)

	failing := newSource(t, srv, "table: proj.web.tracks\non_session_expired: fail", st, mem)
	if _, err := failing.Splits(context.Background()); err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "--fresh") {
		t.Errorf("on_session_expired fail: got %v", err)
	}

	restart := newSource(t, srv, "table: proj.web.tracks", st, mem)
	wantIDs(t, readAll(t, restart, nil), seq(0, 9)...)
	second, _ := restart.Splits(context.Background())
	if first[0].ID == second[0].ID {
		t.Errorf("a new session must have new split ids")
	}
	for _, r := range srv.SessionRequests() {
		if got := r.GetReadSession().GetTableModifiers().GetSnapshotTime().AsTime().Format(time.RFC3339Nano); got != snap {
			t.Errorf("a new session must read the same snapshot %s, got %s", snap, got)
		}
	}

	// A session that expires mid-read says so.
	srv.ExpireSessions()
	_, err = readSplit(t, restart, second[0], pipeline.ReadOptions{Columns: pipeline.AllColumns})
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("want a session expired error, got %v", err)
	}
}

func TestQueryJobReusedOnResume(t *testing.T) {
	srv, mem := eventsServer(t, "", 0)
	const sql = "SELECT id, event, ts FROM proj.web.tracks WHERE ts >= @since"
	rec := events(memory.NewGoAllocator(), 10, 100)
	srv.AddQuery(sql, rec)
	rec.Release()
	st := newState()
	body := "project: billing\nquery: \"" + sql + "\"\nparams: { since: 2024-01-01, label: x, limit: 5 }"

	src := newSource(t, srv, body, st, mem)
	wantIDs(t, readAll(t, src, nil), seq(100, 110)...)
	job := st.get(keyJobID)
	if !strings.HasPrefix(job, "backfill_bq-test_") {
		t.Fatalf("job id %q not stored", job)
	}
	if c := srv.Counts(); c.JobsInsert != 1 || c.CreateReadSession != 1 {
		t.Errorf("calls %+v", c)
	}
	bodies := srv.JobBodies()
	params := fmt.Sprint(bodies[0]["configuration"].(map[string]any)["query"].(map[string]any)["queryParameters"])
	if !strings.Contains(params, "since") || !strings.Contains(params, "2024-01-01") || !strings.Contains(params, "INT64") || !strings.Contains(params, "DATE") {
		t.Errorf("query parameters sent: %s", params)
	}
	if got := srv.SessionRequests()[0].GetReadSession().GetTable(); got != "projects/billing/datasets/_bqtest_anon/tables/anon_"+job {
		t.Errorf("read the wrong table %s", got)
	}

	// A resumed run finds the job, does not run the query again.
	src2 := newSource(t, srv, body, st, mem)
	wantIDs(t, readAll(t, src2, nil), seq(100, 110)...)
	if c := srv.Counts(); c.JobsInsert != 1 || c.JobsGet < 2 || c.CreateReadSession != 1 {
		t.Errorf("resume reran the query or the session: %+v", c)
	}

	// Its result table expired: the query runs again, in a new session.
	srv.DropTable(srv.JobDestination(job))
	src3 := newSource(t, srv, body, st, mem)
	wantIDs(t, readAll(t, src3, nil), seq(100, 110)...)
	if c := srv.Counts(); c.JobsInsert != 2 || c.CreateReadSession != 2 || st.get(keyJobID) == job {
		t.Errorf("expired result: %+v", c)
	}
	noRESTSurprises(t, srv)
}

func TestInvalidQuery(t *testing.T) {
	srv, _ := eventsServer(t, "", 0)
	srv.AddQueryError("SELEC 1", `Syntax error: Unexpected identifier "SELEC" at [1:1]`)
	src := newSource(t, srv, "project: billing\nquery: SELEC 1", newState(), memory.NewGoAllocator())
	_, err := src.Splits(context.Background())
	if err == nil || !strings.Contains(err.Error(), "at [1:1]") || !strings.Contains(err.Error(), "Syntax error") {
		t.Fatalf("want the query's error with its location, got %v", err)
	}
}

func TestIncrementalCursor(t *testing.T) {
	srv, mem := eventsServer(t, "proj.crm.accounts", 10)
	st := newState()
	body := "table: proj.crm.accounts\ncursor: { column: ts }\ncolumns: [id, event]"

	src := newSource(t, srv, body, st, mem)
	wantIDs(t, readAll(t, src, nil), seq(0, 10)...)
	if st.get(keyCursor) != "" {
		t.Fatalf("the cursor advanced before the run finished: %s", st.get(keyCursor))
	}
	if fields := srv.SessionRequests()[0].GetReadSession().GetReadOptions().GetSelectedFields(); fmt.Sprint(fields) != "[id event ts]" {
		t.Errorf("the cursor column must be read: %v", fields)
	}
	if err := src.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.get(keySession) != "" || st.get(keySnapshot) != "" || !strings.Contains(st.get(keyCursor), "timestamp") {
		t.Fatalf("after Finish: %v", st.Copy())
	}

	// Rows 10..14 arrive (and row 3 is unchanged); the next run reads only them.
	rec := events(memory.NewGoAllocator(), 15, 0)
	srv.AddTable("proj.crm.accounts", rec)
	rec.Release()
	src2 := newSource(t, srv, body, st, mem)
	wantIDs(t, readAll(t, src2, nil), seq(10, 15)...)
	want := `(` + "`ts`" + ` > TIMESTAMP "2024-03-01 00:09:00+00:00")`
	if r := srv.SessionRequests()[1].GetReadSession().GetReadOptions().GetRowRestriction(); r != want {
		t.Errorf("row restriction %q, want %q", r, want)
	}
	src2.Finish(context.Background())

	// Nothing new: a run reads nothing and keeps the cursor.
	src3 := newSource(t, srv, body, st, mem)
	wantIDs(t, readAll(t, src3, nil))
	cur := st.get(keyCursor)
	src3.Finish(context.Background())
	if st.get(keyCursor) != cur || !strings.Contains(cur, fmt.Sprint(time.Date(2024, 3, 1, 0, 14, 0, 0, time.UTC).UnixMicro())) {
		t.Errorf("cursor %s", st.get(keyCursor))
	}
}

func TestTableErrors(t *testing.T) {
	srv, _ := eventsServer(t, "", 0)
	srv.DenyTable("proj.secret.users")
	for _, c := range []struct{ table, want string }{
		{"proj.web.missing", "table proj.web.missing: not found"},
		{"proj.secret.users", "table proj.secret.users: permission denied"},
	} {
		src := newSource(t, srv, "table: "+c.table, newState(), memory.NewGoAllocator())
		_, err := src.Splits(context.Background())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.table, err, c.want)
		}
	}
	if c := srv.Counts(); c.CreateReadSession != 0 {
		t.Errorf("no session should be tried: %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"max_streams: 2", "set table"},
		{"table: a.b.c\nquery: SELECT 1", "either table or query"},
		{"table: nodots", "not project.dataset.table"},
		{"table: a.b.c\nparams: {x: 1}", "params go with query"},
		{"table: a.b.c\ncursor: {}", "cursor needs a column"},
		{"query: SELECT 1\nsnapshot_time: \"2024-01-01T00:00:00Z\"", "FOR SYSTEM_TIME"},
		{"table: a.b.c\nsnapshot_time: yesterday", "cannot parse"},
		{"table: a.b.c\ninsecure: true", "storage_endpoint"},
	} {
		conf, err := load(t, nil, c.body)
		if err == nil {
			_, err = New(conf, &pipeline.Env{State: newState()})
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.body, err, c.want)
		}
	}
	conf, err := load(t, nil, "table: a.b.c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(conf, &pipeline.Env{State: newState(), Shard: 1, Shards: 2}); err == nil || !strings.Contains(err.Error(), "cannot be sharded") {
		t.Errorf("a sharded run: got %v, want it refused", err)
	}
	if _, err := parseTable("example.com:proj.ds.t"); err != nil {
		t.Errorf("domain-scoped project: %v", err)
	}
}

// The session asks for the configured buffer compression, the server
// compresses every batch with it, and the reader decodes the same rows.
func TestArrowCompression(t *testing.T) {
	sizes := map[string]int64{}
	for _, c := range []string{"none", "lz4", "zstd", ""} {
		srv, mem := eventsServer(t, "proj.web.tracks", 5000)
		srv.BatchRows = 1000 // batches as large as the service's, so compression pays
		conf := "table: proj.web.tracks\nmax_streams: 2"
		if c != "" {
			conf += "\ncompression: " + c
		}
		src := newSource(t, srv, conf, newState(), mem)
		wantIDs(t, readAll(t, src, nil), seq(0, 5000)...)
		got := srv.SessionRequests()[0].GetReadSession().GetReadOptions().GetArrowSerializationOptions().GetBufferCompression()
		want := map[string]storagepb.ArrowSerializationOptions_CompressionCodec{
			"none": storagepb.ArrowSerializationOptions_COMPRESSION_UNSPECIFIED, "": storagepb.ArrowSerializationOptions_LZ4_FRAME,
			"lz4": storagepb.ArrowSerializationOptions_LZ4_FRAME, "zstd": storagepb.ArrowSerializationOptions_ZSTD}[c]
		if got != want {
			t.Errorf("compression %q: session asked for %v, want %v", c, got, want)
		}
		sizes[c] = srv.Counts().ArrowBytes
	}
	if sizes["lz4"] >= sizes["none"] || sizes["zstd"] >= sizes["none"] || sizes[""] != sizes["lz4"] {
		t.Errorf("Arrow bytes on the wire: %v; compressed should be smaller, and lz4 the default", sizes)
	}
}
