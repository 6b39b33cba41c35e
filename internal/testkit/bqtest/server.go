// Package bqtest is an in-process BigQuery for tests: a real gRPC Storage
// Read server (CreateReadSession, ReadRows with Arrow IPC) and an httptest
// REST server for the calls the official client makes (tables.get,
// jobs.insert, jobs.get, getQueryResults). Tables are in-memory Arrow
// records; sessions split them into contiguous streams.
package bqtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Counts is how many times each API was called.
type Counts struct {
	CreateReadSession int
	ReadRows          int
	TablesGet         int
	JobsInsert        int
	DryRuns           int // jobs.insert with dryRun: planned, not run, not counted in JobsInsert
	JobsGet           int
	GetQueryResults   int
	TabledataList     int
	Unknown           int
	// ArrowBytes is the size of every serialized record batch sent, as
	// compressed when the session asked for buffer compression.
	ArrowBytes int64
}

// Server is one fake BigQuery: both endpoints, shared state.
type Server struct {
	storagepb.UnimplementedBigQueryReadServer

	// GRPCAddr is the Storage Read endpoint (host:port, plain text).
	GRPCAddr string
	// URL is the REST endpoint root (http://127.0.0.1:PORT); the client's
	// base path is URL + "/bigquery/v2/".
	URL string
	// DefaultStreams is how many streams a session gets when the request
	// does not ask for fewer (default 3).
	DefaultStreams int
	// BatchRows is the rows per ReadRows response (default 4).
	BatchRows int
	// SessionTTL is how long sessions live (default 6h).
	SessionTTL time.Duration
	// Location is reported for tables and jobs (default "US").
	Location string

	t     testing.TB
	mem   memory.Allocator
	grpcS *grpc.Server
	http  *httptest.Server

	mu        sync.Mutex
	hold      chan string // HoldJobs: the ids of held jobs, as clients wait for them
	counts    Counts
	tables    map[string]*table // "project.dataset.table"
	queries   map[string]query
	jobs      map[string]*jobEntry
	sessions  map[string]*session
	streams   map[string]*stream
	nextID    int
	failures  []*Failure
	requests  []*storagepb.CreateReadSessionRequest
	jobBodies []map[string]any
}

type table struct {
	project, dataset, id string
	rec                  arrow.Record
	deny                 bool
}

type query struct {
	result arrow.Record
	errMsg string // non-empty: the query is invalid
}

type jobEntry struct {
	project, id, sql string
	dest             *table
	errMsg           string
	params           any
	running          bool // held by HoldJobs
	polled           bool // a client has asked whether it is done
}

type session struct {
	name    string
	expires time.Time
	schema  []byte
	codec   storagepb.ArrowSerializationOptions_CompressionCodec
}

type stream struct {
	name string
	sess *session
	rec  arrow.Record // this stream's rows, projected and filtered
}

// Failure makes ReadRows on a stream fail with Code after sending After
// responses, Times times.
type Failure struct {
	StreamIndex int // index of the stream in the most recent session
	After       int
	Code        codes.Code
	Times       int
	stream      string
}

// New starts both servers; they stop when the test ends.
func New(t testing.TB) *Server {
	s := &Server{
		t: t, mem: memory.NewGoAllocator(),
		DefaultStreams: 3, BatchRows: 4, SessionTTL: 6 * time.Hour, Location: "US",
		tables: map[string]*table{}, queries: map[string]query{}, jobs: map[string]*jobEntry{},
		sessions: map[string]*session{}, streams: map[string]*stream{},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("bqtest: listen: %v", err)
	}
	s.grpcS = grpc.NewServer()
	storagepb.RegisterBigQueryReadServer(s.grpcS, s)
	go func() { _ = s.grpcS.Serve(lis) }()
	s.GRPCAddr = lis.Addr().String()
	s.http = httptest.NewServer(http.HandlerFunc(s.serveREST))
	s.URL = s.http.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the servers and releases every record the server holds.
func (s *Server) Close() {
	s.grpcS.Stop()
	s.http.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.streams {
		st.rec.Release()
	}
	s.streams = map[string]*stream{}
	for _, tb := range s.tables {
		tb.rec.Release()
	}
	s.tables = map[string]*table{}
	for _, q := range s.queries {
		if q.result != nil {
			q.result.Release()
		}
	}
	s.queries = map[string]query{}
}

// Counts returns the calls made so far.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// SessionRequests returns every CreateReadSession request received.
func (s *Server) SessionRequests() []*storagepb.CreateReadSessionRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*storagepb.CreateReadSessionRequest(nil), s.requests...)
}

// JobBodies returns the decoded body of every jobs.insert call.
func (s *Server) JobBodies() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.jobBodies...)
}

// AddTable serves rec as table "project.dataset.table". The server keeps
// its own reference.
func (s *Server) AddTable(name string, rec arrow.Record) {
	p, d, id := splitName(s.t, name)
	rec.Retain()
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.tables[name]; old != nil {
		old.rec.Release()
	}
	s.tables[name] = &table{project: p, dataset: d, id: id, rec: rec}
}

// DenyTable makes every access to the table fail with permission denied.
func (s *Server) DenyTable(name string) {
	p, d, id := splitName(s.t, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if tb := s.tables[name]; tb != nil {
		tb.deny = true
		return
	}
	rec := array.NewRecord(arrow.NewSchema(nil, nil), nil, 0)
	s.tables[name] = &table{project: p, dataset: d, id: id, rec: rec, deny: true}
}

// AddQuery makes the SQL text (compared with collapsed whitespace) return
// result.
func (s *Server) AddQuery(sql string, result arrow.Record) {
	result.Retain()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries[normSQL(sql)] = query{result: result}
}

// AddQueryError makes the SQL text fail as an invalid query with msg.
func (s *Server) AddQueryError(sql, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries[normSQL(sql)] = query{errMsg: msg}
}

// DropTable removes a table (e.g. an expired query result table).
func (s *Server) DropTable(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tb := s.tables[name]; tb != nil {
		tb.rec.Release()
		delete(s.tables, name)
	}
}

// Job returns a job's destination table name ("" when unknown).
func (s *Server) JobDestination(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.jobs[id]; j != nil && j.dest != nil {
		return j.dest.project + "." + j.dest.dataset + "." + j.dest.id
	}
	return ""
}

// ExpireSessions makes every existing session expired.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, se := range s.sessions {
		se.expires = time.Now().Add(-time.Minute)
	}
}

// Fail injects a ReadRows failure on a stream of the latest session.
func (s *Server) Fail(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	if n := len(s.requests); n > 0 {
		for _, st := range s.streams {
			if st.sess.name == s.lastSession() {
				names = append(names, st.name)
			}
		}
	}
	for _, n := range names {
		if strings.HasSuffix(n, fmt.Sprintf("/streams/%d", f.StreamIndex)) {
			f.stream = n
		}
	}
	if f.stream == "" {
		s.t.Fatalf("bqtest: no stream %d in the latest session", f.StreamIndex)
	}
	s.failures = append(s.failures, &f)
}

func (s *Server) lastSession() string {
	last, lastN := "", -1
	for name := range s.sessions {
		var n int
		fmt.Sscanf(name[strings.LastIndex(name, "/")+1:], "s%d", &n)
		if n > lastN {
			last, lastN = name, n
		}
	}
	return last
}

func splitName(t testing.TB, name string) (string, string, string) {
	parts := strings.Split(name, ".")
	if len(parts) != 3 {
		t.Fatalf("bqtest: table %q is not project.dataset.table", name)
	}
	return parts[0], parts[1], parts[2]
}

var spaces = regexp.MustCompile(`\s+`)

func normSQL(q string) string { return strings.TrimSpace(spaces.ReplaceAllString(q, " ")) }

// ---- gRPC Storage Read API ----

var tablePath = regexp.MustCompile(`^projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)$`)

// CreateReadSession projects and filters the table, then splits it into
// contiguous streams.
func (s *Server) CreateReadSession(ctx context.Context, req *storagepb.CreateReadSessionRequest) (*storagepb.ReadSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.CreateReadSession++
	s.requests = append(s.requests, req)
	rs := req.GetReadSession()
	if !strings.HasPrefix(req.GetParent(), "projects/") {
		return nil, status.Errorf(codes.InvalidArgument, "parent %q is not projects/PROJECT", req.GetParent())
	}
	m := tablePath.FindStringSubmatch(rs.GetTable())
	if m == nil {
		return nil, status.Errorf(codes.InvalidArgument, "Invalid table name %q", rs.GetTable())
	}
	name := m[1] + "." + m[2] + "." + m[3]
	tb := s.tables[name]
	if tb == nil {
		return nil, status.Errorf(codes.NotFound, "Not found: Table %s:%s.%s", m[1], m[2], m[3])
	}
	if tb.deny {
		return nil, status.Errorf(codes.PermissionDenied, "Access Denied: Table %s:%s.%s: Permission bigquery.tables.getData denied on table %s:%s.%s (or it may not exist).", m[1], m[2], m[3], m[1], m[2], m[3])
	}
	if rs.GetDataFormat() != storagepb.DataFormat_ARROW {
		return nil, status.Errorf(codes.InvalidArgument, "bqtest serves only ARROW, got %s", rs.GetDataFormat())
	}
	rec, err := project(tb.rec, rs.GetReadOptions().GetSelectedFields())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	defer rec.Release()
	filtered, err := filter(s.mem, rec, rs.GetReadOptions().GetRowRestriction())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "row restriction %q: %v", rs.GetReadOptions().GetRowRestriction(), err)
	}
	defer filtered.Release()

	s.nextID++
	sess := &session{
		name:    fmt.Sprintf("projects/%s/locations/us/sessions/s%d", strings.TrimPrefix(req.GetParent(), "projects/"), s.nextID),
		expires: time.Now().Add(s.SessionTTL),
		codec:   rs.GetReadOptions().GetArrowSerializationOptions().GetBufferCompression(),
	}
	sess.schema, err = schemaBytes(filtered.Schema())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.sessions[sess.name] = sess
	n := s.DefaultStreams
	if mx := int(req.GetMaxStreamCount()); mx > 0 && mx < n {
		n = mx
	}
	rows := int(filtered.NumRows())
	if rows < n {
		n = rows
	}
	out := &storagepb.ReadSession{
		Name:       sess.name,
		ExpireTime: timestamppb.New(sess.expires),
		DataFormat: storagepb.DataFormat_ARROW,
		Schema: &storagepb.ReadSession_ArrowSchema{ArrowSchema: &storagepb.ArrowSchema{
			SerializedSchema: sess.schema,
		}},
		Table:             rs.GetTable(),
		TableModifiers:    rs.GetTableModifiers(),
		ReadOptions:       rs.GetReadOptions(),
		EstimatedRowCount: int64(rows),
	}
	for i := 0; i < n; i++ {
		lo, hi := rows*i/n, rows*(i+1)/n
		st := &stream{name: fmt.Sprintf("%s/streams/%d", sess.name, i), sess: sess, rec: filtered.NewSlice(int64(lo), int64(hi))}
		s.streams[st.name] = st
		out.Streams = append(out.Streams, &storagepb.ReadStream{Name: st.name})
	}
	return out, nil
}

// ReadRows sends the stream's rows from the requested offset, BatchRows
// per response, as Arrow IPC record batch messages.
func (s *Server) ReadRows(req *storagepb.ReadRowsRequest, srv storagepb.BigQueryRead_ReadRowsServer) error {
	s.mu.Lock()
	s.counts.ReadRows++
	st := s.streams[req.GetReadStream()]
	var fail *Failure
	for _, f := range s.failures {
		if f.stream == req.GetReadStream() && f.Times > 0 {
			f.Times--
			fail = f
			break
		}
	}
	batch := s.BatchRows
	if st != nil {
		st.rec.Retain()
	}
	s.mu.Unlock()
	if st == nil {
		return status.Errorf(codes.NotFound, "stream %q not found", req.GetReadStream())
	}
	defer st.rec.Release()
	if time.Now().After(st.sess.expires) {
		return status.Errorf(codes.FailedPrecondition, "there was an error operating on '%s': session expired at %s", st.name, st.sess.expires.Format(time.RFC3339))
	}
	rows := st.rec.NumRows()
	off := req.GetOffset()
	if off < 0 || off > rows {
		return status.Errorf(codes.OutOfRange, "offset %d is beyond the %d rows of stream %s", off, rows, st.name)
	}
	sent := 0
	for lo := off; lo < rows; lo += int64(batch) {
		if fail != nil && sent == fail.After {
			return status.Errorf(fail.Code, "bqtest: injected failure on %s", st.name)
		}
		hi := min(lo+int64(batch), rows)
		part := st.rec.NewSlice(lo, hi)
		data, err := batchBytes(part, st.sess.schema, st.sess.codec)
		part.Release()
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		s.mu.Lock()
		s.counts.ArrowBytes += int64(len(data))
		s.mu.Unlock()
		err = srv.Send(&storagepb.ReadRowsResponse{
			RowCount: hi - lo,
			Rows: &storagepb.ReadRowsResponse_ArrowRecordBatch{ArrowRecordBatch: &storagepb.ArrowRecordBatch{
				SerializedRecordBatch: data,
			}},
			Stats: &storagepb.StreamStats{Progress: &storagepb.StreamStats_Progress{
				AtResponseStart: float64(lo) / float64(rows), AtResponseEnd: float64(hi) / float64(rows),
			}},
		})
		if err != nil {
			return err
		}
		sent++
	}
	if fail != nil && sent == fail.After {
		return status.Errorf(fail.Code, "bqtest: injected failure on %s", st.name)
	}
	return nil
}

// schemaBytes is the encapsulated IPC schema message, as the service sends
// it in ReadSession.arrow_schema.
func schemaBytes(sc *arrow.Schema) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc))
	if err := w.Close(); err != nil {
		return nil, err
	}
	return stripEOS(buf.Bytes()), nil
}

// batchBytes is one encapsulated IPC record batch message without the
// schema, as the service sends it in ReadRowsResponse: its buffers
// compressed with codec, as the session's arrow_serialization_options ask.
func batchBytes(rec arrow.Record, schema []byte, codec storagepb.ArrowSerializationOptions_CompressionCodec) ([]byte, error) {
	var buf bytes.Buffer
	opts := []ipc.Option{ipc.WithSchema(rec.Schema())}
	switch codec {
	case storagepb.ArrowSerializationOptions_LZ4_FRAME:
		opts = append(opts, ipc.WithLZ4())
	case storagepb.ArrowSerializationOptions_ZSTD:
		opts = append(opts, ipc.WithZstd())
	}
	w := ipc.NewWriter(&buf, opts...)
	if err := w.Write(rec); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	b := stripEOS(buf.Bytes())
	if !bytes.HasPrefix(b, schema) {
		return nil, fmt.Errorf("bqtest: IPC stream does not start with the session schema")
	}
	return append([]byte(nil), b[len(schema):]...), nil
}

// stripEOS drops the end-of-stream marker (0xFFFFFFFF 0x00000000).
func stripEOS(b []byte) []byte {
	if len(b) >= 8 && bytes.Equal(b[len(b)-8:], []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}) {
		return b[:len(b)-8]
	}
	return b
}

func project(rec arrow.Record, cols []string) (arrow.Record, error) {
	if len(cols) == 0 {
		rec.Retain()
		return rec, nil
	}
	var fields []arrow.Field
	var arrs []arrow.Array
	for _, c := range cols {
		idx := rec.Schema().FieldIndices(c)
		if len(idx) == 0 {
			return nil, fmt.Errorf("selected field %q does not exist in the table", c)
		}
		fields = append(fields, rec.Schema().Field(idx[0]))
		arrs = append(arrs, rec.Column(idx[0]))
	}
	md := rec.Schema().Metadata()
	return array.NewRecord(arrow.NewSchema(fields, &md), arrs, rec.NumRows()), nil
}

// writeJSON writes a REST response.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// HoldJobs keeps the query jobs inserted from now on running (jobs.get
// says RUNNING, getQueryResults that the job is not complete) until
// release is called; waiting receives a held job's id when a client first
// asks for its results, that is, waits for it. A test stops a run while
// it waits for its query this way.
func (s *Server) HoldJobs() (waiting <-chan string, release func()) {
	ch := make(chan string, 16)
	s.mu.Lock()
	s.hold = ch
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hold = nil
		for _, j := range s.jobs {
			j.running = false
		}
	}
}
