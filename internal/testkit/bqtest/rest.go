package bqtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	bq "google.golang.org/api/bigquery/v2"
)

var (
	restTable   = regexp.MustCompile(`^/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)$`)
	restData    = regexp.MustCompile(`^/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)/data$`)
	restJobs    = regexp.MustCompile(`^/bigquery/v2/projects/([^/]+)/jobs$`)
	restJob     = regexp.MustCompile(`^/bigquery/v2/projects/([^/]+)/jobs/([^/]+)$`)
	restResults = regexp.MustCompile(`^/bigquery/v2/projects/([^/]+)/queries/([^/]+)$`)
)

func apiError(w http.ResponseWriter, code int, reason, status, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"code": code, "message": msg, "status": status,
		"errors": []map[string]any{{"message": msg, "domain": "global", "reason": reason}},
	}})
}

func (s *Server) serveREST(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodGet && restData.MatchString(p):
		s.mu.Lock()
		s.counts.TabledataList++
		s.mu.Unlock()
		s.t.Errorf("bqtest: tabledata.list called (%s): the client must read through the Storage Read API", p)
		apiError(w, http.StatusNotImplemented, "notImplemented", "UNIMPLEMENTED", "tabledata.list is not served by bqtest")
	case r.Method == http.MethodGet && restTable.MatchString(p):
		m := restTable.FindStringSubmatch(p)
		s.tablesGet(w, m[1], m[2], m[3])
	case r.Method == http.MethodPost && restJobs.MatchString(p):
		s.jobsInsert(w, r, restJobs.FindStringSubmatch(p)[1])
	case r.Method == http.MethodGet && restJob.MatchString(p):
		m := restJob.FindStringSubmatch(p)
		s.mu.Lock()
		s.counts.JobsGet++
		j := s.jobs[m[2]]
		s.mu.Unlock()
		if j == nil || j.project != m[1] {
			apiError(w, 404, "notFound", "NOT_FOUND", fmt.Sprintf("Not found: Job %s:%s.%s", m[1], s.Location, m[2]))
			return
		}
		s.mu.Lock()
		out := s.jobJSON(j)
		s.mu.Unlock()
		writeJSON(w, 200, out)
	case r.Method == http.MethodGet && restResults.MatchString(p):
		m := restResults.FindStringSubmatch(p)
		s.mu.Lock()
		s.counts.GetQueryResults++
		j := s.jobs[m[2]]
		s.mu.Unlock()
		s.mu.Lock()
		running := j != nil && j.running
		if running && !j.polled {
			j.polled = true
			select {
			case s.hold <- j.id:
			default:
			}
		}
		s.mu.Unlock()
		switch {
		case j == nil:
			apiError(w, 404, "notFound", "NOT_FOUND", fmt.Sprintf("Not found: Job %s:%s.%s", m[1], s.Location, m[2]))
		case running:
			writeJSON(w, 200, &bq.GetQueryResultsResponse{JobComplete: false,
				JobReference: &bq.JobReference{ProjectId: j.project, JobId: j.id, Location: s.Location}})
		case j.errMsg != "":
			apiError(w, 400, "invalidQuery", "INVALID_ARGUMENT", j.errMsg)
		default:
			if mr := r.URL.Query().Get("maxResults"); mr != "0" {
				s.t.Errorf("bqtest: getQueryResults asked for rows (maxResults=%q): rows must come from the Storage Read API", mr)
			}
			writeJSON(w, 200, &bq.GetQueryResultsResponse{
				JobComplete:  true,
				JobReference: &bq.JobReference{ProjectId: j.project, JobId: j.id, Location: s.Location},
				Schema:       bqSchema(j.dest.rec.Schema()),
				TotalRows:    uint64(j.dest.rec.NumRows()),
			})
		}
	default:
		s.mu.Lock()
		s.counts.Unknown++
		s.mu.Unlock()
		s.t.Logf("bqtest: UNEXPECTED REST CALL %s %s?%s: not served", r.Method, p, r.URL.RawQuery)
		apiError(w, http.StatusNotImplemented, "notImplemented", "UNIMPLEMENTED", "bqtest does not serve "+r.Method+" "+p)
	}
}

func (s *Server) tablesGet(w http.ResponseWriter, project, dataset, id string) {
	s.mu.Lock()
	s.counts.TablesGet++
	tb := s.tables[project+"."+dataset+"."+id]
	s.mu.Unlock()
	switch {
	case tb == nil:
		apiError(w, 404, "notFound", "NOT_FOUND", fmt.Sprintf("Not found: Table %s:%s.%s", project, dataset, id))
	case tb.deny:
		apiError(w, 403, "accessDenied", "PERMISSION_DENIED", fmt.Sprintf("Access Denied: Table %s:%s.%s: Permission bigquery.tables.get denied on table %s:%s.%s (or it may not exist).", project, dataset, id, project, dataset, id))
	default:
		writeJSON(w, 200, &bq.Table{
			Kind:           "bigquery#table",
			Id:             project + ":" + dataset + "." + id,
			TableReference: &bq.TableReference{ProjectId: project, DatasetId: dataset, TableId: id},
			Schema:         bqSchema(tb.rec.Schema()),
			NumRows:        uint64(tb.rec.NumRows()),
			Type:           "TABLE",
			Location:       s.Location,
		})
	}
}

func (s *Server) jobsInsert(w http.ResponseWriter, r *http.Request, project string) {
	var raw map[string]any
	var job bq.Job
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&raw); err != nil {
		apiError(w, 400, "invalid", "INVALID_ARGUMENT", "bad job body: "+err.Error())
		return
	}
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &job); err != nil || job.Configuration == nil || job.Configuration.Query == nil {
		apiError(w, 400, "invalid", "INVALID_ARGUMENT", "bqtest serves only query jobs")
		return
	}
	if job.Configuration.DryRun {
		s.dryRun(w, project, &job)
		return
	}
	s.mu.Lock()
	s.counts.JobsInsert++
	s.jobBodies = append(s.jobBodies, raw)
	id := ""
	if job.JobReference != nil {
		id = job.JobReference.JobId
	}
	if id == "" {
		s.nextID++
		id = "job_" + strconv.Itoa(s.nextID)
	}
	if s.jobs[id] != nil {
		s.mu.Unlock()
		apiError(w, 409, "duplicate", "ALREADY_EXISTS", fmt.Sprintf("Already Exists: Job %s:%s.%s", project, s.Location, id))
		return
	}
	j := &jobEntry{project: project, id: id, sql: job.Configuration.Query.Query, params: raw}
	q, ok := s.queries[normSQL(j.sql)]
	switch {
	case !ok:
		j.errMsg = fmt.Sprintf("bqtest: no result registered for query %q", j.sql)
	case q.errMsg != "":
		j.errMsg = q.errMsg
	default:
		q.result.Retain()
		j.dest = &table{project: project, dataset: "_bqtest_anon", id: "anon_" + id, rec: q.result}
		s.tables[project+"._bqtest_anon.anon_"+id] = j.dest
	}
	if s.hold != nil {
		j.running = true
	}
	s.jobs[id] = j
	out := s.jobJSON(j)
	s.mu.Unlock()
	writeJSON(w, 200, out)
}

// dryRun answers a jobs.insert with dryRun as BigQuery does: the query is
// planned, not run. The job is not kept; its statistics give the result's
// schema; an invalid query is a 400.
func (s *Server) dryRun(w http.ResponseWriter, project string, job *bq.Job) {
	sql := job.Configuration.Query.Query
	s.mu.Lock()
	s.counts.DryRuns++
	q, ok := s.queries[normSQL(sql)]
	var schema *bq.TableSchema
	if ok && q.errMsg == "" {
		schema = bqSchema(q.result.Schema())
	}
	s.mu.Unlock()
	switch {
	case !ok:
		apiError(w, 400, "invalidQuery", "INVALID_ARGUMENT", fmt.Sprintf("bqtest: no result registered for query %q", sql))
		return
	case q.errMsg != "":
		apiError(w, 400, "invalidQuery", "INVALID_ARGUMENT", q.errMsg)
		return
	}
	ref := &bq.JobReference{ProjectId: project, Location: s.Location}
	if job.JobReference != nil {
		ref.JobId = job.JobReference.JobId
	}
	writeJSON(w, 200, &bq.Job{
		Kind:          "bigquery#job",
		JobReference:  ref,
		Configuration: &bq.JobConfiguration{JobType: "QUERY", DryRun: true, Query: &bq.JobConfigurationQuery{Query: sql, UseLegacySql: new(bool)}},
		Status:        &bq.JobStatus{State: "DONE"},
		Statistics:    &bq.JobStatistics{Query: &bq.JobStatistics2{StatementType: "SELECT", Schema: schema}},
	})
}

// jobJSON is a query job, running or finished; the caller holds s.mu.
func (s *Server) jobJSON(j *jobEntry) *bq.Job {
	qc := &bq.JobConfigurationQuery{Query: j.sql, UseLegacySql: new(bool)}
	st := &bq.JobStatus{State: "DONE"}
	if j.running {
		st.State = "RUNNING"
	} else if j.errMsg != "" {
		st.ErrorResult = &bq.ErrorProto{Reason: "invalidQuery", Location: "query", Message: j.errMsg}
		st.Errors = []*bq.ErrorProto{st.ErrorResult}
	} else {
		qc.DestinationTable = &bq.TableReference{ProjectId: j.dest.project, DatasetId: j.dest.dataset, TableId: j.dest.id}
	}
	return &bq.Job{
		Kind:          "bigquery#job",
		Id:            j.project + ":" + s.Location + "." + j.id,
		JobReference:  &bq.JobReference{ProjectId: j.project, JobId: j.id, Location: s.Location},
		Configuration: &bq.JobConfiguration{JobType: "QUERY", Query: qc},
		Status:        st,
		Statistics:    &bq.JobStatistics{Query: &bq.JobStatistics2{StatementType: "SELECT"}},
	}
}

// bqSchema describes an Arrow schema the way tables.get does, using the
// metadata the Storage API puts on JSON, GEOGRAPHY and DATETIME fields.
func bqSchema(sc *arrow.Schema) *bq.TableSchema {
	out := &bq.TableSchema{}
	for _, f := range sc.Fields() {
		out.Fields = append(out.Fields, bqField(f))
	}
	return out
}

func bqField(f arrow.Field) *bq.TableFieldSchema {
	name := f.Name
	mode := "NULLABLE"
	if !f.Nullable {
		mode = "REQUIRED"
	}
	t := f.Type
	if l, ok := t.(*arrow.ListType); ok {
		mode = "REPEATED"
		t = l.Elem()
		f = l.ElemField()
	}
	out := &bq.TableFieldSchema{Name: name, Mode: mode}
	ext := ""
	if i := f.Metadata.FindKey("ARROW:extension:name"); i >= 0 {
		ext = f.Metadata.Values()[i]
	}
	switch t := t.(type) {
	case *arrow.Int64Type:
		out.Type = "INTEGER"
	case *arrow.Float64Type:
		out.Type = "FLOAT"
	case *arrow.BooleanType:
		out.Type = "BOOLEAN"
	case *arrow.BinaryType:
		out.Type = "BYTES"
	case *arrow.StringType:
		switch ext {
		case "google:sqlType:json":
			out.Type = "JSON"
		case "google:sqlType:geography":
			out.Type = "GEOGRAPHY"
		default:
			out.Type = "STRING"
		}
	case *arrow.TimestampType:
		out.Type = "TIMESTAMP"
		if t.TimeZone == "" {
			out.Type = "DATETIME"
		}
	case *arrow.Date32Type:
		out.Type = "DATE"
	case *arrow.Time64Type:
		out.Type = "TIME"
	case *arrow.Decimal128Type:
		out.Type = "NUMERIC"
	case *arrow.Decimal256Type:
		out.Type = "BIGNUMERIC"
	case *arrow.StructType:
		out.Type = "RECORD"
		for _, c := range t.Fields() {
			out.Fields = append(out.Fields, bqField(c))
		}
	default:
		out.Type = strings.ToUpper(t.Name())
	}
	return out
}
