package file

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/backfillhq/backfill/internal/testkit/acktest"
	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"go.uber.org/goleak"
)

// The source reads Parquet through pqarrow, which reads columns from
// goroutines: every test must leave none running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func writeFile(t *testing.T, p string, fn func(io.Writer) error) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func text(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

func tree(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a", "x.parquet"), func(w io.Writer) error { return sampledata.WriteOrdersParquetRowGroups(w, 300, 1, 100) })
	writeFile(t, filepath.Join(dir, "a", "b", "y.csv.gz"), func(w io.Writer) error {
		zw := gzip.NewWriter(w)
		if err := sampledata.WriteSignupsCSV(zw, 40, 1); err != nil {
			return err
		}
		return zw.Close()
	})
	writeFile(t, filepath.Join(dir, "a", "b", "c", "z.ndjson"), text("{\"a\":1}\n{\"a\":2}\n"))
	writeFile(t, filepath.Join(dir, "a", "_SUCCESS"), text(""))
	writeFile(t, filepath.Join(dir, "a", ".x.parquet.crc"), text("crc"))
	writeFile(t, filepath.Join(dir, "a", "b", "notes.tmp"), text("tmp"))
	return dir
}

func TestFiles(t *testing.T) {
	dir := tree(t)
	p := func(s string) string { return filepath.Join(dir, filepath.FromSlash(s)) }
	tests := []struct {
		path    string
		exclude []string
		want    []string
		err     string
	}{
		{path: p("a"), exclude: []string{"*.tmp"}, want: []string{p("a/b/c/z.ndjson"), p("a/b/y.csv.gz"), p("a/x.parquet")}},
		{path: p("a") + "/", exclude: []string{p("a/b/**")}, want: []string{p("a/x.parquet")}},
		{path: p("a/**/*.csv.gz"), want: []string{p("a/b/y.csv.gz")}},
		{path: p("a/**"), exclude: []string{"*.tmp", "_*", ".*"}, want: []string{p("a/b/c/z.ndjson"), p("a/b/y.csv.gz"), p("a/x.parquet")}},
		{path: p("a/*/*.gz"), want: []string{p("a/b/y.csv.gz")}},
		{path: p("a/x.parquet"), want: []string{p("a/x.parquet")}},
		{path: p("a/**/*.avro"), err: "no file matches"},
		{path: p("nowhere/*.csv"), err: "no file matches"},
		{path: p("missing.csv"), err: "no such file"},
	}
	for _, tc := range tests {
		s := &Source{Path: tc.path, Exclude: tc.exclude}
		got, err := s.Files()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: got %v, %v\nwant %v", tc.path, got, err, tc.want)
		}
	}
}

// Links to files are read, by a glob or a directory as by an explicit
// path, one path per file: a link to a file listed already (by its name
// or another link) is dropped, since its rows would be sent twice under
// other message ids. Links to directories are not followed, and dangling
// ones skipped.
func TestSymlinks(t *testing.T) {
	dir := tree(t)
	p := func(s string) string { return filepath.Join(dir, filepath.FromSlash(s)) }
	links := filepath.Join(t.TempDir(), "links")
	if err := os.MkdirAll(links, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"l1.parquet": p("a/x.parquet"), "l2.parquet": p("a/x.parquet"),
		"dir.parquet": p("a/b"), "gone.parquet": p("a/none.parquet")} {
		if err := os.Symlink(target, filepath.Join(links, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(p("a/b/y.csv.gz"), filepath.Join(links, "l3.csv.gz")); err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(links, "l1.parquet"), filepath.Join(links, "l3.csv.gz")}
	for _, path := range []string{filepath.Join(links, "*"), links} {
		got, err := (&Source{Path: path}).Files()
		if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: got %v, %v; want %v", path, got, err, want)
		}
	}
	// A path, or a glob's fixed part, that is a link to a directory is
	// walked through it.
	adir := filepath.Join(links, "adir")
	if err := os.Symlink(p("a"), adir); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]string{
		adir:                                  {filepath.Join(adir, "b", "y.csv.gz"), filepath.Join(adir, "x.parquet")},
		filepath.Join(adir, "*.parquet"):      {filepath.Join(adir, "x.parquet")},
		filepath.Join(adir, "**", "*.csv.gz"): {filepath.Join(adir, "b", "y.csv.gz")},
	} {
		got, err := (&Source{Path: path, Exclude: []string{"*.ndjson", "*.tmp"}}).Files()
		if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: got %v, %v; want %v", path, got, err, want)
		}
	}
	// A link beside its target ("latest"): the target keeps its name.
	if err := os.Symlink("x.parquet", p("a/latest.parquet")); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p("a/*.parquet"), p("a")} {
		got, err := (&Source{Path: path, Exclude: []string{"*.csv.gz", "*.ndjson", "*.tmp"}}).Files()
		if err != nil || strings.Join(got, ",") != p("a/x.parquet") {
			t.Errorf("%s: got %v, %v; want only %s", path, got, err, p("a/x.parquet"))
		}
	}
}

func TestRelativeGlob(t *testing.T) {
	dir := tree(t)
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	got, err := (&Source{Path: "./a/**/*.ndjson"}).Files()
	if err != nil || len(got) != 1 || got[0] != filepath.FromSlash("a/b/c/z.ndjson") {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestSplitsAndRead(t *testing.T) {
	dir := tree(t)
	mem := arrowtest.CheckedMem(t)
	s := &Source{Path: filepath.Join(dir, "a"), Exclude: []string{"*.tmp"}, Alloc: mem}
	s.Opts.CSV.Header = true
	ctx := context.Background()
	splits, err := s.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantRows := map[string]int64{"z.ndjson": 2, "y.csv.gz": 40, "x.parquet": 300}
	for _, sp := range splits {
		base := filepath.Base(sp.ID)
		st, _ := os.Stat(sp.ID)
		if sp.Bytes != st.Size() {
			t.Errorf("%s: Bytes %d", sp.ID, sp.Bytes)
		}
		if (base == "x.parquet") != (sp.Rows == 300) || (base != "x.parquet" && sp.Rows != -1) {
			t.Errorf("%s: Rows %d", sp.ID, sp.Rows)
		}
		for _, off := range []int64{0, 1} {
			rr, err := s.Open(ctx, sp, pipeline.ReadOptions{Offset: off, Columns: pipeline.AllColumns, BatchRows: 64})
			if err != nil {
				t.Fatal(err)
			}
			n := off
			for {
				b, err := rr.Next(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if b.Start != n || len(b.Rejects) != 0 {
					t.Fatalf("%s: batch %d-%d, rejects %v", sp.ID, b.Start, b.End, b.Rejects)
				}
				n = b.End
				b.Release()
			}
			if err := rr.Close(); err != nil {
				t.Fatal(err)
			}
			if n != wantRows[base] {
				t.Errorf("%s: read %d rows, want %d", sp.ID, n, wantRows[base])
			}
		}
	}
	// Without the exclude the .tmp file has no known format.
	_, err = (&Source{Path: filepath.Join(dir, "a")}).Splits(ctx)
	if err == nil || !strings.Contains(err.Error(), "notes.tmp: cannot tell the format") {
		t.Fatalf("err = %v", err)
	}
}

func load(t *testing.T, yaml string) (*Source, error) {
	reg := config.NewRegistry()
	reg.Register(Plugins()...)
	reg.Register(acktest.DiscardPlugin("discard", nil))
	cfg, err := config.Load("p.yaml", []byte(yaml), config.LoadOptions{Registry: reg})
	if err != nil {
		return nil, err
	}
	src, err := New(cfg.Source.Conf, &pipeline.Env{})
	if err != nil {
		return nil, err
	}
	return src.(*Source), nil
}

func TestConfig(t *testing.T) {
	s, err := load(t, "name: t\nsource:\n  file:\n    path: dumps/*.txt\n    csv:\n      postgres_text: true\n      header: false\n      columns: {id: int64, at: timestamp}\nsink:\n  discard: {}\n")
	if err != nil {
		t.Fatal(err)
	}
	o := s.Opts
	if o.Format != "csv" || !o.CSV.PostgresText || o.CSV.Header || o.CSV.Null != `\N` || len(o.CSV.Columns) != 2 || o.CSV.Columns[1].Type != "timestamp" {
		t.Fatalf("options %+v", o)
	}
	s, err = load(t, "name: t\nsource:\n  file:\n    path: x.csv\nsink:\n  discard: {}\n")
	if err != nil || !s.Opts.CSV.Header || s.Opts.CSV.Quote != '"' {
		t.Fatalf("defaults: %+v, %v", s, err)
	}
	_, err = load(t, "name: t\nsource:\n  file:\n    path: x.csv\n    format: xml\n    csv:\n      delimiter: ';;'\n      columns: {a: decimal}\nsink:\n  discard: {}\n")
	if err == nil || !strings.Contains(err.Error(), `p.yaml:5:13: /source/file/format: "xml" is not an allowed value`) ||
		!strings.Contains(err.Error(), `/source/file/csv/columns/a: "decimal" is not an allowed value`) {
		t.Fatalf("err = %v", err)
	}
	_, err = load(t, "name: t\nsource:\n  file:\n    path: x.csv\n    csv:\n      delimiter: ';;'\n      quote: ''\nsink:\n  discard: {}\n")
	if err == nil || !strings.Contains(err.Error(), `p.yaml:6:18: /source/file/csv/delimiter: delimiter must be one character`) ||
		!strings.Contains(err.Error(), "p.yaml:7:14: /source/file/csv/quote: quote must be one character") {
		t.Fatalf("err = %v", err)
	}
	_, err = load(t, "name: t\nsource:\n  file:\n    path: 'dumps/a**/*.csv'\nsink:\n  discard: {}\n")
	if err == nil || !strings.Contains(err.Error(), "** must be a whole path segment") {
		t.Fatalf("err = %v", err)
	}
}
