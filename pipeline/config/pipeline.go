package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// On-error policies for rows that cannot be delivered.
const (
	OnErrorDeadLetter = "dead_letter"
	OnErrorStop       = "stop"
)

// pipelineSpec declares the pipeline file itself, with the same machinery
// plugins use.
func pipelineSpec() *Field {
	return Object("", "a backfill pipeline",
		String("name", "identifies the run: its state, its message ids, its logs").
			Example("orders-backfill-2024").Check(checkName),
		pluginField("source", "where rows come from: one key, the source's name", SourceKind),
		List("transforms", "applied in order; each item has one key, the transform's name",
			pluginField("", "", TransformKind)).Optional(),
		pluginField("sink", "where messages go: one key, the sink's name", SinkKind),
		String("state", "where progress is kept: a local directory, or s3://bucket/prefix (options in the query: endpoint, path_style, region, profile, anonymous) for state the machines of a sharded run share").Default(".backfill/state"),
		Int("workers", "splits read in parallel (default: the number of CPUs)").Default(0).
			Check(NonNegative),
		Int("batch_rows", "rows per record batch read from a split").Default(8192).Check(Positive),
		String("on_error", "what a row that cannot be delivered does: go to the dead-letter file, or stop the run").
			Default(OnErrorDeadLetter).Enum(OnErrorDeadLetter, OnErrorStop),
		String("dead_letter", "the dead-letter file (NDJSON); default: <state>/<name>/dead-letters.ndjson. A shard of a sharded run writes its own, with -shard-I-of-N before the extension").
			Optional(),
		String("ledger", "a delivery ledger: a local directory, or s3://bucket/prefix (the options of state), where each run writes "+
			"Parquet files saying, row by row, what became of every row it acknowledged: delivered with which messageId, or rejected "+
			"at which stage (filtered rows are not in it). Files go in <ledger>/<name>/<run id>[-shard-I-of-N]/part-NNNNNN.parquet, one "+
			"per checkpoint (or per 131,072 rows), each written whole before the checkpoint that counts its rows").
			Optional().Check(checkLedger),
		String("max_rejects", `stop the run once more rows than this are rejected: a count ("1000"), a share of the rows read ("10%", `+
			`counted over the resumed runs of one checkpoint and checked once 1,000 rows are read, and at the end), or "none". `+
			`The default stops a run whose mapping, data or destination is wrong, instead of setting most of the input aside`).
			Default(DefaultMaxRejects).Check(func(v any) error { _, err := ParseMaxRejects(v.(string)); return err }),
		Object("sync", "send only what changed since the last acknowledged run: rows are compared by primary key with a snapshot "+
			"kept beside the state (<state>/<name>/snapshot); unchanged rows are filtered, and messageIds derive from the key and "+
			"the content, so a changed row gets a new one",
			Strings("primary_key", "the columns (after the transforms: message paths such as userId, or traits.email) that identify a row; "+
				"a null key is rejected, a key seen twice in a run is rejected at its second row (required)").Optional(),
			Strings("compare", "only these columns count as a change (default: every column but messageId, sentAt and timestamp)").Optional(),
			Strings("ignore", "these columns do not count as a change").Optional(),
			Map("deleted", "a message sent for each key gone from the source, once a run has seen every split: message path -> "+
				"constant, as `set` takes them (type: track, event: User Deleted); the primary key's paths get the key. "+
				"Default: nothing is sent, and the key is forgotten", Any("", "")).Optional(),
		).Optional().Check(checkSync),
		Duration("checkpoint_interval", "how often acknowledged progress is saved").Default(defaultCheckpointEvery).
			Check(PositiveDuration),
		Duration("checkpoint_failure_timeout", "how long periodic checkpoint saves may keep failing (the state store is down, the disk is full) "+
			"before the run stops (0: at the first); delivery goes on meanwhile, and if the run dies, rows delivered since the last save are resent with the same messageIds").
			Default(defaultCheckpointFailureTimeout).Check(NonNegativeDuration),
	)
}

// checkSync wants a primary key: a sync compares rows by it.
func checkSync(v any) error {
	c, _ := v.(*Conf)
	if c == nil || len(c.Strings("primary_key")) == 0 {
		return errors.New("sync needs a primary_key: the columns (message paths after the transforms, such as userId) that identify a row")
	}
	return nil
}

// checkLedger accepts a local directory or an s3:// URL.
func checkLedger(v any) error {
	s := v.(string)
	if s == "" {
		return errors.New("ledger must not be empty (leave it out to keep none)")
	}
	if scheme, _, ok := strings.Cut(s, "://"); ok && len(scheme) >= 2 && scheme != "s3" {
		return fmt.Errorf("ledger %q: a local directory, or s3://bucket/prefix", s)
	}
	return nil
}

func checkName(v any) error {
	s := v.(string)
	if s == "" {
		return errors.New("name must not be empty")
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			return fmt.Errorf("name %q may hold only letters, digits, '-', '_' and '.' (it names state files)", s)
		}
	}
	return nil
}

// NonNegative is a Check for Int fields where 0 means "none" or "let the
// service decide".
func NonNegative(v any) error {
	if v.(int) < 0 {
		return errors.New("must not be negative")
	}
	return nil
}

// Positive is a Check for Int fields that must be above zero.
func Positive(v any) error {
	if v.(int) <= 0 {
		return errors.New("must be positive")
	}
	return nil
}

// PositiveDuration is a Check for Duration fields that must be above zero
// (an interval, a timeout).
func PositiveDuration(v any) error {
	if v.(time.Duration) <= 0 {
		return errors.New("must be positive")
	}
	return nil
}

// NonNegativeDuration is a Check for Duration fields where 0 means "at
// once" or "none".
func NonNegativeDuration(v any) error {
	if v.(time.Duration) < 0 {
		return errors.New("must not be negative")
	}
	return nil
}

// DefaultMaxRejects is the reject budget of a pipeline that sets none.
const DefaultMaxRejects = "10%"

// MaxRejects is a reject budget: a count, or a fraction of rows read.
type MaxRejects struct {
	Count    int64   // at most this many rejects, when Fraction is 0
	Fraction float64 // > 0: at most this share of rows read
}

// ParseMaxRejects reads "1000", "2.5%" or "none" (no budget: nil).
func ParseMaxRejects(s string) (*MaxRejects, error) {
	s = strings.TrimSpace(s)
	if s == "none" {
		return nil, nil
	}
	if strings.HasSuffix(s, "%") {
		f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || f < 0 || f > 100 {
			return nil, fmt.Errorf("%q is not a percentage between 0%% and 100%%", s)
		}
		return &MaxRejects{Fraction: f / 100}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%q is neither a count, a percentage like \"10%%\", nor none", s)
	}
	return &MaxRejects{Count: n}, nil
}

// Pipeline is a loaded, validated pipeline file.
type Pipeline struct {
	File       string
	Name       string
	Source     *PluginConf
	Transforms []*PluginConf
	Sink       *PluginConf
	State      string
	Workers    int
	BatchRows  int
	OnError    string
	DeadLetter string
	Ledger     string      // the delivery ledger's directory or s3:// URL; "" keeps none
	MaxRejects *MaxRejects // nil: none
	Sync       *Sync       // nil: every row is sent, every run
	// Warnings are problems that do not stop this load: with
	// LoadOptions.SecretsOptional, a secret field whose environment
	// variable is not set (CodeUnsetSecret), in file order.
	Warnings ConfigErrors
	root     *Conf
}

// LoadOptions change how a file is read; the zero value reads the process
// environment and the Default registry.
type LoadOptions struct {
	Registry  *Registry
	LookupEnv func(string) (string, bool)
	// SecretsOptional is for the commands that send nothing (validate,
	// preview, status): an unset environment variable in a field declared
	// Secret() resolves to "" and is a warning (Pipeline.Warnings, code
	// CodeUnsetSecret) instead of an error, and Conf.Unset reports it, so a
	// plugin's own check that the secret is there can let it pass. An unset
	// variable in any other field is still an error. `run` leaves it false.
	SecretsOptional bool
}

// LoadFile reads and validates a pipeline file. Every problem is reported
// at once as ConfigErrors.
func LoadFile(path string, opts LoadOptions) (*Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, ConfigErrors{{File: path, Code: CodeUnreadable, Msg: fmt.Sprintf("cannot read the pipeline file: %v", unwrapPath(err))}}
	}
	return Load(path, data, opts)
}

// Load validates a pipeline given as YAML text; file names it in errors.
func Load(file string, data []byte, opts LoadOptions) (*Pipeline, error) {
	if opts.Registry == nil {
		opts.Registry = Default
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = envLookup
	}
	p := &parser{file: file, reg: opts.Registry, lookup: opts.LookupEnv, secretsOptional: opts.SecretsOptional}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, ConfigErrors{syntaxError(file, data, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, ConfigErrors{{File: file, Line: extra.Line, Col: extra.Column, Code: CodeSyntax,
			Msg: "a pipeline file holds one YAML document", Hint: "remove the second '---'"}}
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) && doc.Content[0].Value == "" { // nothing, or "---"
		return nil, ConfigErrors{syntaxError(file, data, io.EOF)}
	}
	p.interpolate(&doc, "")
	root := p.object(pipelineSpec(), doc.Content[0], "")
	p.unsetErrors()
	if len(p.errs) > 0 {
		return nil, p.errs.Sorted()
	}
	c := &Pipeline{
		File:       file,
		Name:       root.String("name"),
		Source:     root.Plugin("source"),
		Transforms: root.Plugins("transforms"),
		Sink:       root.Plugin("sink"),
		State:      root.String("state"),
		Workers:    root.Int("workers"),
		BatchRows:  root.Int("batch_rows"),
		OnError:    root.String("on_error"),
		DeadLetter: root.String("dead_letter"),
		Ledger:     root.String("ledger"),
		Warnings:   p.warnings.Sorted(),
		root:       root,
	}
	if c.Workers == 0 {
		c.Workers = runtime.NumCPU()
	}
	c.MaxRejects, _ = ParseMaxRejects(root.String("max_rejects"))
	if s := root.Object("sync"); s != nil && root.IsSet("sync") {
		c.Sync = &Sync{PrimaryKey: s.Strings("primary_key"), Compare: s.Strings("compare"), Ignore: s.Strings("ignore"),
			Deleted: s.Map("deleted")}
	}
	return c, nil
}

// Sync is the `sync` block: what identifies a row, and which of its
// columns count as a change.
type Sync struct {
	PrimaryKey []string
	Compare    []string // nil: every column but Ignored ones
	Ignore     []string
	// Deleted is the message sent for a removed key (message path ->
	// constant); empty: none.
	Deleted []MapEntry
}

// CheckpointInterval is how often progress is saved.
func (c *Pipeline) CheckpointInterval() time.Duration { return c.root.Duration("checkpoint_interval") }

// CheckpointFailureTimeout is how long periodic saves may fail before the
// run stops.
func (c *Pipeline) CheckpointFailureTimeout() time.Duration {
	return c.root.Duration("checkpoint_failure_timeout")
}

// unwrapPath drops an *os.PathError's repetition of the path.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
