package main

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	arrowpkg "github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/internal/testkit/bqtest"
	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/internal/testkit/sampledata"
)

// writeOrders writes the sample orders (order_id, customer_id, ...) as
// Parquet to dir/name.
func writeOrders(t *testing.T, dir, name string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := sampledata.WriteOrdersParquet(f, 50, 1); err != nil {
		t.Fatal(err)
	}
}

// mappingPipeline is a pipeline whose map reads userId from `column`, at
// userIDAt(source).
func mappingPipeline(source, column string) string {
	return "name: orders\n" +
		"source:\n" +
		source +
		"transforms:\n" +
		"  - map:\n" +
		"      type: track\n" +
		"      event: {const: Order Completed}\n" +
		"      userId: " + column + "\n" +
		"sink:\n" +
		"  file: {path: out.ndjson}\n"
}

// userIDAt is where mappingPipeline(source, ...) names the userId column:
// 9:15 for a two-line source.
func userIDAt(source string) string {
	return fmt.Sprintf("p.yaml:%d:15", 7+strings.Count(source, "\n"))
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// validate runs `backfill validate ARGS p.yaml` in dir.
func validate(t *testing.T, dir, yaml string, args ...string) (int, string, string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "p.yaml"), yaml)
	return runCLI(t, dir, append(append([]string{"validate"}, args...), "p.yaml")...)
}

// A column the map reads that the data lacks is an error at the value
// naming it, with a did you mean over the data's columns, for each local
// format: a Parquet footer, a CSV header, the first lines of NDJSON.
func TestValidateChecksColumnsAgainstLocalData(t *testing.T) {
	dir := t.TempDir()
	writeOrders(t, dir, "orders.parquet")
	writeFile(t, filepath.Join(dir, "orders.csv"), "order_id,customer_id,amount\n1,c1,9.5\n")
	writeFile(t, filepath.Join(dir, "orders.ndjson"), `{"order_id":"1","customer_id":"c1","amount":9.5}`+"\n"+`{"order_id":"2","customer_id":"c2","ctx":{"ip":"10.0.0.1"}}`+"\n")
	gz, _ := os.Create(filepath.Join(dir, "orders.ndjson.gz"))
	zw := gzip.NewWriter(gz)
	fmt.Fprintln(zw, `{"order_id":"1","customer_id":"c1"}`)
	zw.Close()
	gz.Close()
	for _, file := range []string{"orders.parquet", "orders.csv", "orders.ndjson", "orders.ndjson.gz"} {
		t.Run(file, func(t *testing.T) {
			src := "  file:\n    path: " + file + "\n"
			code, _, stderr := validate(t, dir, mappingPipeline(src, "customerid"))
			want := `p.yaml:9:15: /transforms/0/map/userId: column "customerid" is not in ` + file + ` (did you mean "customer_id"?)`
			if code != exitConfig || !strings.Contains(stderr, want) {
				t.Fatalf("exit %d, want %d and\n%s\ngot:\n%s", code, exitConfig, want, stderr)
			}
			code, stdout, stderr := validate(t, dir, mappingPipeline(src, "customer_id"))
			if code != 0 || !strings.Contains(stdout, "columns: the 1 read from the source are in "+file) {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
		})
	}
}

// Without a close match the hint lists some of the data's columns; the JSON
// output carries the stable code.
func TestValidateUnknownColumnJSON(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "orders.csv"), "order_id,customer_id,amount\n1,c1,9.5\n")
	code, stdout, _ := validate(t, dir, mappingPipeline("  file:\n    path: orders.csv\n", "zzz"), "--format", "json")
	var res struct {
		Valid  bool
		Errors []map[string]any
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != exitConfig || res.Valid || len(res.Errors) != 1 {
		t.Fatalf("exit %d: %s", code, stdout)
	}
	e := res.Errors[0]
	if e["code"] != "unknown_column" || e["line"] != 9.0 || e["col"] != 15.0 || e["path"] != "/transforms/0/map/userId" ||
		e["hint"] != "its columns: order_id, customer_id, amount" {
		t.Fatalf("error %v", e)
	}
}

// Of many files, the first is read, and the message names it.
func TestValidateReadsTheFirstOfManyFiles(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "exports"), 0o755)
	writeFile(t, filepath.Join(dir, "exports", "a.csv"), "order_id,customer_id\n1,c1\n")
	writeFile(t, filepath.Join(dir, "exports", "b.csv"), "order_id,customerid\n1,c1\n")
	code, _, stderr := validate(t, dir, mappingPipeline("  file:\n    path: exports/*.csv\n", "customerid"))
	if code != exitConfig || !strings.Contains(stderr, `column "customerid" is not in exports/a.csv (did you mean "customer_id"?)`) {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// Each transform that reads source columns points at its own value: the
// first one reading a column is the one blamed, and a column map renames
// into a message path is not a source column.
func TestValidatePointsAtEachTransform(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "orders.csv"), "order_id,customer_id,created_at,amount,tags\n1,c1,2024-01-01,9.5,{}\n")
	head := "name: orders\nsource:\n  file: {path: orders.csv}\ntransforms:\n"
	tail := "sink:\n  file: {path: out.ndjson}\n"
	for _, tt := range []struct{ transforms, want string }{
		{"  - filter: {expr: 'amount > 0 && amout < 100'}\n  - map: {type: track, event: {const: x}, userId: customer_id}\n",
			`p.yaml:5:35: /transforms/0/filter/expr: column "amout" is not in orders.csv (did you mean "amount"?)`},
		{"  - timestamp: {field: created}\n  - map: {type: track, event: {const: x}, userId: customer_id, timestamp: timestamp}\n",
			`p.yaml:5:24: /transforms/0/timestamp/field: column "created" is not in orders.csv (did you mean "created_at"?)`},
		{"  - cast:\n      fields: {amont: float64}\n  - map: {type: track, event: {const: x}, userId: customer_id, properties: {total: amount}}\n",
			`p.yaml:6:16: /transforms/0/cast/fields/amont: column "amont" is not in orders.csv (did you mean "amount"?)`},
		{"  - rename:\n      fields: {customerid: uid}\n  - map: {type: track, event: {const: x}, userId: uid}\n",
			`p.yaml:6:16: /transforms/0/rename/fields/customerid: column "customerid" is not in orders.csv (did you mean "customer_id"?)`},
		{"  - map:\n      type: track\n      event: {const: x}\n      userId: customer_id\n      properties: {total: {column: amout}}\n",
			`p.yaml:9:36: /transforms/0/map/properties/total/column: column "amout" is not in orders.csv (did you mean "amount"?)`},
		{"  - message_id: {key: [order_id, custmer_id]}\n  - map: {type: track, event: {const: x}, userId: customer_id}\n",
			`p.yaml:5:34: /transforms/0/message_id/key/1: column "custmer_id" is not in orders.csv (did you mean "customer_id"?)`},
		{"  - expand: {column: tag}\n",
			`p.yaml:5:22: /transforms/0/expand/column: column "tag" is not in orders.csv (did you mean "tags"?)`},
		{"  - integrations: {from_column: tag}\n  - map: {type: track, event: {const: x}, userId: customer_id}\n",
			`p.yaml:5:33: /transforms/0/integrations/from_column: column "tag" is not in orders.csv (did you mean "tags"?)`},
	} {
		code, _, stderr := validate(t, dir, head+tt.transforms+tail)
		if code != exitConfig || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: exit %d, want\n%s\ngot\n%s", tt.transforms, code, tt.want, stderr)
		}
	}
	// After map, columns are message paths: timestamp's field, message_id's
	// key are not looked for in the data.
	code, stdout, stderr := validate(t, dir, head+"  - map: {type: track, event: {const: x}, userId: customer_id, timestamp: created_at, properties: {total: amount}}\n"+
		"  - timestamp: {field: timestamp}\n  - message_id: {key: [userId, properties.total]}\n"+tail)
	if code != 0 || !strings.Contains(stdout, "columns: the 3 read from the source are in orders.csv") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
}

// Without --source, validate sends nothing to S3 and says in one line that
// the columns were not checked and how; with it, it reads one object's
// footer and finds the missing column.
func TestValidateS3OnlyWithSource(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "exports")
	dir := t.TempDir()
	writeOrders(t, dir, "orders.parquet")
	for _, k := range []string{"orders/2024/a.parquet", "orders/2024/b.parquet"} {
		srv.PutFile(t, "exports", k, filepath.Join(dir, "orders.parquet"))
	}
	proxy := srv.Counting(t)
	src := fmt.Sprintf("  s3:\n    bucket: exports\n    prefix: orders/\n    pattern: \"**/*.parquet\"\n    endpoint: %s\n    path_style: true\n"+
		"    region: %s\n    access_key_id: %s\n    secret_access_key: %s\n", proxy.URL, s3test.Region, srv.AccessKey, srv.SecretKey)
	yaml := mappingPipeline(src, "customerid")

	code, stdout, stderr := validate(t, dir, yaml)
	if code != 0 || !strings.Contains(stdout, "is valid") {
		t.Fatalf("without --source: exit %d\n%s%s", code, stdout, stderr)
	}
	note := "note: the columns the pipeline reads were not checked against the data: that takes a request to the s3 source, which validate sends only with --source (`backfill validate --source p.yaml`)"
	if !strings.Contains(stderr, note) || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("want the one-line note\n%s\ngot\n%s", note, stderr)
	}
	if st := proxy.Stats(); st.Lists != 0 || st.Gets != 0 {
		t.Fatalf("validate without --source contacted S3: %+v", st)
	}

	code, _, stderr = validate(t, dir, yaml, "--source")
	want := userIDAt(src) + `: /transforms/0/map/userId: column "customerid" is not in s3://exports/orders/2024/a.parquet (did you mean "customer_id"?)`
	if code != exitConfig || !strings.Contains(stderr, want) {
		t.Fatalf("--source: exit %d, want\n%s\ngot\n%s", code, want, stderr)
	}
	st := proxy.Stats()
	if st.Lists != 1 || st.Gets == 0 || st.Gets > 2 {
		t.Fatalf("want one listing and a footer's ranged GETs, got %+v", st)
	}
	for _, r := range st.Ranges {
		if !strings.HasPrefix(r, "bytes=") {
			t.Fatalf("a whole-object GET: %+v", st)
		}
	}

	// NDJSON: one ranged GET of the first bytes.
	srv.Put(t, "exports", "events/e.ndjson", []byte(`{"customer_id":"c1","event":"x"}`+"\n"))
	proxy.Reset()
	src = strings.Replace(src, "prefix: orders/\n    pattern: \"**/*.parquet\"\n", "prefix: events/\n", 1)
	code, stdout, stderr = validate(t, dir, mappingPipeline(src, "customer_id"), "--source")
	if code != 0 || !strings.Contains(stdout, "columns: the 1 read from the source are in s3://exports/events/e.ndjson") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if st := proxy.Stats(); st.Gets != 1 || st.Ranges[0] != fmt.Sprintf("bytes=0-%d", len(`{"customer_id":"c1","event":"x"}`)) {
		t.Fatalf("want one ranged GET, got %+v", st)
	}
}

// An S3 source whose endpoint answers nothing still validates without
// --source (nothing is sent); with --source the failure is an error.
func TestValidateS3UnreachableWithoutSource(t *testing.T) {
	dir := t.TempDir()
	src := "  s3:\n    bucket: exports\n    endpoint: http://127.0.0.1:9\n    path_style: true\n    region: us-east-1\n    max_attempts: 1\n" +
		"    access_key_id: k\n    secret_access_key: s\n"
	code, stdout, stderr := validate(t, dir, mappingPipeline(src, "customerid"))
	if code != 0 || !strings.Contains(stdout, "is valid") || !strings.Contains(stderr, "validate --source p.yaml") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = validate(t, dir, mappingPipeline(src, "customerid"), "--source")
	if code != exitFailed || !strings.Contains(stderr, "--source: reading the data's columns") {
		t.Fatalf("--source: exit %d\n%s", code, stderr)
	}
}

// BigQuery with --source: a table's columns from tables.get, a query's
// from a dry run; no read session, no query job.
func TestValidateBigQueryWithSource(t *testing.T) {
	srv := bqtest.New(t)
	sc := arrowpkg.NewSchema([]arrowpkg.Field{
		{Name: "order_id", Type: arrowpkg.BinaryTypes.String},
		{Name: "customer_id", Type: arrowpkg.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	b.Field(0).(*array.StringBuilder).Append("o1")
	b.Field(1).(*array.StringBuilder).Append("c1")
	rec := b.NewRecord()
	b.Release()
	defer rec.Release()
	srv.AddTable("acme.shop.orders", rec)
	const query = "SELECT order_id, customer_id FROM `acme.shop.orders`"
	srv.AddQuery(query, rec)
	conn := fmt.Sprintf("    endpoint: %s\n    storage_endpoint: %s\n    insecure: true\n    no_auth: true\n    project: acme\n", srv.URL, srv.GRPCAddr)
	dir := t.TempDir()

	table := "  bigquery:\n    table: acme.shop.orders\n" + conn
	code, _, stderr := validate(t, dir, mappingPipeline(table, "customerid"))
	if code != 0 || !strings.Contains(stderr, "validate --source p.yaml") || srv.Counts() != (bqtest.Counts{}) {
		t.Fatalf("without --source: exit %d, counts %+v\n%s", code, srv.Counts(), stderr)
	}
	code, _, stderr = validate(t, dir, mappingPipeline(table, "customerid"), "--source")
	want := userIDAt(table) + `: /transforms/0/map/userId: column "customerid" is not in table acme.shop.orders (did you mean "customer_id"?)`
	if code != exitConfig || !strings.Contains(stderr, want) {
		t.Fatalf("table: exit %d, want\n%s\ngot\n%s", code, want, stderr)
	}

	q := "  bigquery:\n    query: \"" + query + "\"\n" + conn
	code, _, stderr = validate(t, dir, mappingPipeline(q, "customerid"), "--source")
	want = userIDAt(q) + `: /transforms/0/map/userId: column "customerid" is not in the query's result (did you mean "customer_id"?)`
	if code != exitConfig || !strings.Contains(stderr, want) {
		t.Fatalf("query: exit %d, want\n%s\ngot\n%s", code, want, stderr)
	}
	code, stdout, stderr := validate(t, dir, mappingPipeline(q, "customer_id"), "--source")
	if code != 0 || !strings.Contains(stdout, "columns: the 1 read from the source are in the query's result") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	c := srv.Counts()
	if c.TablesGet != 1 || c.DryRuns != 2 || c.JobsInsert != 0 || c.CreateReadSession != 0 || c.ReadRows != 0 {
		t.Fatalf("want one tables.get and two dry runs, nothing run or read: %+v", c)
	}
}

// A run that meets a missing column suggests among all the data's
// columns, though the source was asked only for those the pipeline reads.
func TestRunSuggestsAmongAllTheDataColumns(t *testing.T) {
	dir := t.TempDir()
	writeOrders(t, dir, "orders.parquet")
	writeFile(t, filepath.Join(dir, "p.yaml"), mappingPipeline("  file:\n    path: orders.parquet\n", "customerid")+"state: state\n")
	code, _, stderr := runCLI(t, dir, "run", "--progress", "none", "p.yaml")
	if code != exitFailed || !strings.Contains(stderr, `map: userId: column "customerid" is not in the data (did you mean "customer_id"?); columns: order_id, customer_id,`) {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}
