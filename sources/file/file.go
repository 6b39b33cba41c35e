// Package file is the "file" source: warehouse dumps on local disk
// (Parquet, CSV, NDJSON, optionally gzip or zstd), one split per file.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/backfillhq/backfill/sources/glob"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/sources/format"
)

// Plugins declares the file source.
func Plugins() []config.Plugin { return []config.Plugin{config.SourcePlugin("file", spec(), New)} }

func init() { config.Default.Register(Plugins()...) }

// Spec declares the file source's config.
func spec() *config.Spec {
	fields := []*config.Field{
		config.String("path", "a file, a directory (every file below it) or a glob where ** spans directories; relative to the working directory").
			Example("exports/orders/**/*.parquet").Check(func(v any) error { return glob.Check(filepath.ToSlash(v.(string))) }),
		config.Strings("exclude", "globs of files to leave out, matched against the whole path, or against the file name when they hold no '/'").
			Optional().Example([]string{"*.tmp"}),
	}
	return config.NewSpec("local files: Parquet, CSV or NDJSON dumps, optionally gzip or zstd", append(fields, format.FieldSpecs()...)...).
		WithDescription(`For warehouse dumps on local disk: Postgres COPY, Snowflake or Redshift
UNLOAD, Parquet exports, copies of a Segment archive.

There is one split per file; a split's ID is its cleaned path. Reading a
directory skips files whose names start with '.' or '_' (_SUCCESS, .crc).
Symbolic links to files are read, one path per file: a link to a file
listed already (a "latest" pointer beside it) is skipped, so no row is sent
twice under two names. Progress is saved with the file's size: a file
whose size changed since an earlier run (appended to, fetched again after
a cut-short copy) is read again from its start.

Formats (the s3 source reads them the same way):

- Parquet is read through Arrow's pqarrow, only the columns the pipeline
  uses. Its footers give the progress an exact total. On resume, whole row
  groups already delivered are skipped without being read. A string column
  that repeats few values (dictionary-encoded in the file, with a
  dictionary of at most a byte per row: event names, currencies, plans,
  user agents) is read as an Arrow dictionary, one index per row instead of
  a copy of the string; the encoder escapes each distinct value once a
  batch.
- CSV and TSV: columns are strings unless declared in csv.columns.
  csv.null '\N' reads Postgres COPY output; "" (the default) reads
  Redshift UNLOAD. csv.postgres_text reads COPY's text format.
- NDJSON: one object per line. Nested objects are kept as JSON columns, so
  a Segment archive line comes out with columns named by message path.
- Compression comes from the extension (.gz, .zst), else from the file's
  first bytes, unless compression is set.

Errors:

- A bad row (a value that does not fit its declared type, a wrong field
  count, a line that is not JSON) is rejected with the file, line, column
  and what was expected, e.g. orders.csv line 12, column "amount": expected
  int64, got "12,5". The pipeline's on_error decides whether the run goes
  on.
- A file that cannot be read (a corrupt Parquet page, a truncated gzip
  stream, an empty file) fails its split with an error naming the file and
  rows, never a crash. The other splits go on (unless on_error: stop), the
  summary names the failed splits, and a rerun retries them.`).
		WithExample("Parquet export", "path: exports/orders/**/*.parquet\n").
		WithExample("Postgres COPY dump", "path: dumps/users.txt.gz\ncsv:\n  postgres_text: true\n  header: false\n  columns: {id: int64, email: string, created_at: timestamp}\n")
}

// Source reads local files.
type Source struct {
	Path    string
	Exclude []string
	Opts    format.Options
	Alloc   memory.Allocator
}

// New builds the source from its config.
func New(conf *config.Conf, env *pipeline.Env) (pipeline.Source, error) {
	opts, err := format.OptionsFromConf(conf)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	s := &Source{Path: conf.String("path"), Exclude: conf.Strings("exclude"), Opts: opts}
	if env != nil {
		s.Alloc = env.Alloc
	}
	if s.Path == "" {
		errs = append(errs, conf.Errorf("path", "path must not be empty"))
	}
	if _, err := path.Match(filepath.ToSlash(s.Path), ""); err != nil {
		errs = append(errs, conf.Errorf("path", "bad glob %q: %v", s.Path, err))
	}
	for _, e := range s.Exclude {
		if _, err := path.Match(e, ""); err != nil {
			errs = append(errs, conf.Errorf("exclude", "bad glob %q: %v", e, err))
		}
	}
	if opts.Format == "" && opts.CSV.PostgresText {
		// postgres_text implies CSV-family files whatever their extension.
		s.Opts.Format = format.CSV
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Files lists the files the source reads, cleaned and sorted.
func (s *Source) Files() ([]string, error) {
	pat := filepath.Clean(s.Path)
	var files []string
	links := map[string]bool{} // the files listed through a symbolic link
	if !glob.HasMeta(pat) {
		st, err := os.Stat(pat)
		if err != nil {
			return nil, fmt.Errorf("file source: %w", err)
		}
		if !st.IsDir() {
			return []string{pat}, nil
		}
		root := walkRoot(pat)
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != root && hidden(d.Name()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if isFile(p, d) && !s.excluded(p) {
				files = append(files, p)
				if d.Type()&fs.ModeSymlink != 0 {
					links[p] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("file source: %w", err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("file source: no files in directory %s", pat)
		}
		return onePathEach(files, links), nil
	}
	segs := strings.Split(filepath.ToSlash(pat), "/")
	// Walk only below the part of the pattern without wildcards.
	fixed := 0
	for fixed < len(segs)-1 && !glob.HasMeta(segs[fixed]) {
		fixed++
	}
	base := filepath.FromSlash(strings.Join(segs[:fixed], "/"))
	switch {
	case fixed == 0:
		base = "."
	case base == "":
		base = "/"
	}
	root := walkRoot(base)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return nil
			}
			return err
		}
		if !isFile(p, d) {
			return nil
		}
		rel := filepath.ToSlash(p)
		if fixed == 0 && base == "." {
			rel = filepath.ToSlash(filepath.Clean(p))
		}
		if glob.MatchSegs(segs, strings.Split(rel, "/")) && !s.excluded(p) {
			files = append(files, filepath.Clean(p))
			if d.Type()&fs.ModeSymlink != 0 {
				links[filepath.Clean(p)] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("file source: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("file source: no file matches %q", s.Path)
	}
	sort.Strings(files)
	return onePathEach(files, links), nil
}

// onePathEach drops the links to a file listed already, so each file is
// read once: its split ID is its path, and two paths would send its rows
// twice under different message ids. A file listed by its own name keeps
// it; one reached only through links keeps the first link in order.
func onePathEach(files []string, links map[string]bool) []string {
	if len(links) == 0 {
		return files
	}
	real := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			if abs, err := filepath.Abs(r); err == nil {
				return abs
			}
		}
		return p
	}
	seen := map[string]bool{}
	for _, f := range files {
		if !links[f] {
			seen[real(f)] = true
		}
	}
	out := files[:0]
	for _, f := range files {
		if links[f] {
			r := real(f)
			if seen[r] {
				continue
			}
			seen[r] = true
		}
		out = append(out, f)
	}
	return out
}

// walkRoot is dir as WalkDir should be given it: a link to a directory,
// named by the user as the path or a glob's fixed part, is walked through
// (a trailing separator makes WalkDir follow it); links met inside the
// walk are not.
func walkRoot(dir string) string {
	if st, err := os.Lstat(dir); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		return dir + string(filepath.Separator)
	}
	return dir
}

// isFile reports whether a walked entry is a file to read: a regular file,
// or a symbolic link to one, as a shell glob takes it (onePathEach then
// keeps one path per file). Links to directories are not followed (no
// loops).
func isFile(p string, d fs.DirEntry) bool {
	if d.Type().IsRegular() {
		return true
	}
	if d.Type()&fs.ModeSymlink == 0 {
		return false
	}
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") }

func (s *Source) excluded(p string) bool {
	slash := filepath.ToSlash(p)
	for _, e := range s.Exclude {
		if !strings.Contains(e, "/") {
			if ok, _ := path.Match(e, path.Base(slash)); ok {
				return true
			}
			continue
		}
		if glob.MatchSegs(strings.Split(path.Clean(e), "/"), strings.Split(slash, "/")) {
			return true
		}
	}
	return false
}

// Splits lists one split per file; Parquet files report their row count
// from the footer.
func (s *Source) Splits(ctx context.Context) ([]pipeline.Split, error) {
	files, err := s.Files()
	if err != nil {
		return nil, err
	}
	out := make([]pipeline.Split, 0, len(files))
	for _, p := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, _, err := format.Detect(p, s.Opts)
		if err != nil {
			return nil, fmt.Errorf("%w (or leave the file out with exclude)", err)
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		// The size is the version: it changes when a file is appended to or
		// rewritten, and not when a copy (aws s3 sync, cp) gives it a new
		// modification time.
		sp := pipeline.Split{ID: p, Rows: -1, Bytes: st.Size(), Version: fmt.Sprintf("%d bytes", st.Size())}
		if f == format.Parquet {
			fh, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			// A file whose footer cannot be read fails as a split when it is
			// opened, so the other files are still read and the run names
			// every bad one, instead of the listing stopping at the first.
			if rows, err := format.ParquetRows(fh, st.Size()); err == nil {
				sp.Rows = rows
			}
			fh.Close()
		}
		out = append(out, sp)
	}
	return out, nil
}

// Open reads one file from opts.Offset.
func (s *Source) Open(ctx context.Context, split pipeline.Split, ro pipeline.ReadOptions) (pipeline.RecordReader, error) {
	fh, err := os.Open(split.ID)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	in := format.Input{
		Name:     split.ID,
		Size:     st.Size(),
		ReaderAt: fh,
		Open: func(context.Context) (io.ReadCloser, error) {
			if _, err := fh.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			return io.NopCloser(fh), nil
		},
	}
	rr, err := format.Open(ctx, in, split.ID, s.Opts, ro, s.Alloc)
	if err != nil {
		fh.Close()
		return nil, err
	}
	return &fileReader{RecordReader: rr, f: fh}, nil
}

// fileReader closes the file after the format reader.
type fileReader struct {
	pipeline.RecordReader
	f *os.File
}

func (r *fileReader) Close() error {
	return errors.Join(r.RecordReader.Close(), r.f.Close())
}

// PeekColumns names the columns of the first file (a Parquet footer, a CSV
// header, the keys of an NDJSON file's first lines): validate compares
// them with the columns the pipeline reads. It lists the files, which
// reads directories only.
func (s *Source) PeekColumns(ctx context.Context) ([]string, string, error) {
	files, err := s.Files()
	if err != nil {
		return nil, "", err
	}
	p := files[0]
	fh, err := os.Open(p)
	if err != nil {
		return nil, "", err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, "", err
	}
	in := format.Input{
		Name:     p,
		Size:     st.Size(),
		ReaderAt: fh,
		Open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(fh, 0, st.Size())), nil
		},
	}
	return format.PeekColumns(ctx, in, s.Opts)
}

// PeekRemote is false: the files are local.
func (s *Source) PeekRemote() bool { return false }
