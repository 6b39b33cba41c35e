package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/sources/s3"
)

// unloadSettings is Redshift's UNLOAD: where it writes, as whom, and how
// the files are read back.
type unloadSettings struct {
	s3, iamRole, region, maxFileSize string
	profile, roleARN, endpoint       string
	pathStyle                        bool
	accessKey, secretKey             string
}

// unloadRunner runs an UNLOAD statement (a test stands in for Redshift).
type unloadRunner func(ctx context.Context, sql, prefix string) error

func unloadFromConf(c *config.Conf) (*unloadSettings, []error) {
	u := &unloadSettings{
		s3: strings.TrimSpace(c.String("s3")), iamRole: strings.TrimSpace(c.String("iam_role")), region: c.String("region"),
		maxFileSize: strings.TrimSpace(c.String("max_file_size")), profile: c.String("profile"), roleARN: c.String("role_arn"),
		endpoint: c.String("endpoint"), pathStyle: c.Bool("path_style"), accessKey: c.String("access_key_id"),
		secretKey: c.String("secret_access_key"),
	}
	var errs []error
	if b, _, ok := splitS3(u.s3); !ok || b == "" {
		errs = append(errs, c.Errorf("s3", "unload needs s3: an S3 prefix like s3://bucket/prefix/"))
	}
	if u.iamRole == "" {
		errs = append(errs, c.Errorf("iam_role", "unload needs iam_role: the role Redshift assumes to write to S3 (arn:aws:iam::ACCOUNT:role/NAME)"))
	}
	if u.maxFileSize != "" && !validFileSize(u.maxFileSize) {
		errs = append(errs, c.Errorf("max_file_size", "max_file_size is a size like \"256 MB\" or \"1 GB\" (5 MB to 6.2 GB)"))
	}
	if !strings.HasSuffix(u.s3, "/") {
		u.s3 += "/"
	}
	return u, errs
}

func validFileSize(s string) bool {
	f := strings.Fields(strings.ToUpper(s))
	if len(f) != 2 || (f[1] != "MB" && f[1] != "GB") {
		return false
	}
	for _, r := range f[0] {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return f[0] != ""
}

func splitS3(u string) (bucket, key string, ok bool) {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return "", "", false
	}
	bucket, key, _ = strings.Cut(rest, "/")
	return bucket, key, true
}

// unloadState is what the state keeps of a run's UNLOAD.
type unloadState struct {
	For    string `json:"for"`    // the plan's hash
	Prefix string `json:"prefix"` // where this run's files are
	Done   bool   `json:"done"`   // UNLOAD finished: its manifest lists them
}

// unloadQuery is the SELECT that UNLOAD runs: the projected columns, in
// the forms Parquet carries (SUPER as JSON text, other types Redshift
// cannot write as text, timestamps without zone moved to UTC), and the
// plan's conditions.
func (s *Source) unloadQuery(cols []column, want pipeline.Columns, p *plan) (string, error) {
	names := s.columns
	if !want.All && len(want.Names) > 0 {
		names = want.Names
	}
	if len(names) == 0 {
		names = columnNames(cols)
	}
	var items []string
	for _, n := range names {
		i := findColumn(cols, n)
		if i < 0 {
			return "", fmt.Errorf("postgres: column %q is not in %s (columns: %s)", n, s.what(), strings.Join(columnNames(cols), ", "))
		}
		c := cols[i]
		q := quoteIdent(c.Name)
		switch {
		case c.OID == oidSuper:
			items = append(items, "JSON_SERIALIZE("+q+") AS "+q)
		case c.Kind == kTimestamp && s.loc.String() != "UTC":
			items = append(items, "CONVERT_TIMEZONE("+quoteLiteral(s.loc.String(), false)+", 'UTC', "+q+") AS "+q)
		case !c.Decoded:
			s.note("type:"+c.Name, "postgres: a column of a type the source does not decode is read as text", "column", c.Name, "type", c.Type)
			items = append(items, "CAST("+q+" AS VARCHAR(65535)) AS "+q)
		default:
			items = append(items, q)
		}
	}
	var conds []string
	if s.where != "" {
		conds = append(conds, "("+s.where+")")
	}
	if s.curCol != "" {
		col := quoteIdent(cols[findColumn(cols, s.curCol)].Name)
		if p.CursorLo != "" {
			conds = append(conds, col+" > "+quoteLiteral(p.CursorLo, false))
		}
		if p.CursorHi != "" {
			conds = append(conds, col+" <= "+quoteLiteral(p.CursorHi, false))
		}
	}
	return selectSpec{cols: items, from: s.from(), where: conds}.sql(), nil
}

// unloadSplits runs the UNLOAD once (its prefix is saved before it runs,
// and that it finished after), then lists its manifest with the s3
// source: one split per file, each resumed at its row offset (the files do
// not change).
func (s *Source) unloadSplits(ctx context.Context, p *plan) ([]pipeline.Split, error) {
	if p.Empty {
		return nil, nil
	}
	var st unloadState
	if v := s.get(keyUnload); v != "" {
		if err := json.Unmarshal([]byte(v), &st); err != nil {
			return nil, fmt.Errorf("postgres: the stored unload state is unreadable (%v); rerun with --fresh", err)
		}
		if st.For != p.Hash {
			st = unloadState{}
		}
	}
	if !st.Done {
		if p.Finished {
			return nil, errors.New("postgres: the run finished but its UNLOAD is not recorded; rerun with --fresh")
		}
		if st.Prefix == "" {
			var b [4]byte
			_, _ = rand.Read(b[:])
			st = unloadState{For: p.Hash, Prefix: s.unload.s3 + s.env.Name + "/" + time.Now().UTC().Format("20060102T150405Z") +
				"-" + hex.EncodeToString(b[:]) + "/"}
			s.saveUnload(st)
			// Saved before the UNLOAD runs: a rerun after a kill writes to
			// the same place (ALLOWOVERWRITE) instead of a new one.
			if err := s.env.State.Save(ctx); err != nil {
				s.warn("postgres: could not save the UNLOAD prefix before running it; a rerun may unload to a new prefix", "error", err)
			}
		}
		s.mu.Lock()
		cols, want := s.cols, s.want
		s.mu.Unlock()
		query, err := s.unloadQuery(cols, want, p)
		if err != nil {
			return nil, err
		}
		sql := unloadSQL(query, st.Prefix, s.unload.iamRole, s.unload.region, s.unload.maxFileSize)
		s.info("postgres: running UNLOAD", "to", st.Prefix)
		began := time.Now()
		if err := s.unloader(ctx, sql, st.Prefix); err != nil {
			return nil, s.errorf("postgres: UNLOAD to %s: %s", st.Prefix, describe(err))
		}
		s.info("postgres: UNLOAD done", "to", st.Prefix, "took", time.Since(began).Round(time.Millisecond))
		st.Done = true
		s.saveUnload(st)
		if err := s.env.State.Save(ctx); err != nil {
			s.warn("postgres: could not save that the UNLOAD finished; a rerun may run it again", "error", err)
		}
	}
	src, err := s.manifestSource(st.Prefix + "manifest")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.unloadSrc = src
	s.mu.Unlock()
	return src.Splits(ctx)
}

func (s *Source) saveUnload(st unloadState) {
	b, _ := json.Marshal(st)
	s.env.State.Set(keyUnload, string(b))
}

// runUnload runs the UNLOAD on the cluster.
func (s *Source) runUnload(ctx context.Context, sql, _ string) error {
	c, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	if err := s.execSimple(ctx, c, sql); err != nil {
		closeConn(ctx, c)
		return err
	}
	c.Release()
	return nil
}

// manifestSource is the s3 source reading an UNLOAD manifest, built from
// its own config so that it reads (credentials, retries, Parquet) as it
// does everywhere.
func (s *Source) manifestSource(manifest string) (pipeline.Source, error) {
	bucket, _, _ := splitS3(manifest)
	u := s.unload
	body := map[string]any{"bucket": bucket, "manifest": manifest, "format": "parquet"}
	set := func(k, v string) {
		if v != "" {
			body[k] = v
		}
	}
	set("region", u.region)
	set("profile", u.profile)
	set("role_arn", u.roleARN)
	set("endpoint", u.endpoint)
	set("access_key_id", u.accessKey)
	set("secret_access_key", u.secretKey)
	if u.pathStyle {
		body["path_style"] = true
	}
	doc := map[string]any{"name": s.env.Name, "source": map[string]any{"s3": body}, "sink": map[string]any{"none": map[string]any{}}}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	// Values are literal: no ${VAR} in them is expanded.
	data = []byte(strings.ReplaceAll(string(data), "$", "$$"))
	reg := config.NewRegistry()
	reg.Register(s3.Plugins()...)
	reg.Register(config.SinkPlugin("none", config.NewSpec("stand-in"), func(*config.Conf, *pipeline.Env) (pipeline.Sink, error) {
		return nil, errors.New("not a sink")
	}))
	cfg, err := config.Load("unload", data, config.LoadOptions{Registry: reg, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		return nil, s.errorf("postgres: reading the UNLOAD files: %v", err)
	}
	src, err := s3.New(cfg.Source.Conf, s.env)
	if err != nil {
		return nil, s.errorf("postgres: reading the UNLOAD files: %v", err)
	}
	return src, nil
}
