package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/backfillhq/backfill/internal/redact"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes, documented in the README.
const (
	exitOK          = 0
	exitFailed      = 1 // the run failed: see the summary and the log
	exitConfig      = 2 // the pipeline file is invalid
	exitLocked      = 3 // another run of the pipeline (or shard) is running
	exitInterrupted = 130
)

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func execute(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "error:", err)
	return exitFailed
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "backfill",
		Short:         "Load historical event data into Segment",
		Long:          "backfill runs a YAML pipeline: one source -> transforms -> a sink (Segment's /v1/batch, or a file).",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// A wrong flag, argument or command is a usage error: exit 2.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{exitConfig, err} })
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q", args[0])
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return &exitError{exitConfig, fmt.Errorf("%s; `backfill --help` lists the commands", msg)}
	}
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	root.SuggestionsMinimumDistance = 2
	root.AddCommand(newRunCmd(stderr), newValidateCmd(stdout), newPreviewCmd(stdout, stderr), newStatusCmd(stdout),
		newPluginsCmd(stdout), newSchemaCmd(stdout), newVersionCmd(stdout))
	return root
}

// usage makes an argument check's failure a usage error (exit 2), with
// the command's usage line.
func usage(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &exitError{exitConfig, fmt.Errorf("%v (usage: %s)", err, cmd.UseLine())}
		}
		return nil
	}
}

// loadConfig is the one parse -> validate path of run: every secret's
// variable must be set. Config problems exit with code 2.
func loadConfig(path string) (*config.Pipeline, error) {
	return loadPipeline(path, config.LoadOptions{})
}

// loadConfigOffline loads a pipeline for the commands that send nothing
// (preview, status; validate loads the same way): a secret whose variable
// is unset is a warning in cfg.Warnings, not an error.
func loadConfigOffline(path string) (*config.Pipeline, error) {
	return loadPipeline(path, config.LoadOptions{SecretsOptional: true})
}

func loadPipeline(path string, opts config.LoadOptions) (*config.Pipeline, error) {
	cfg, err := config.LoadFile(path, opts)
	if err != nil {
		return nil, configExit(err)
	}
	return cfg, nil
}

func configExit(err error) error {
	if ces := config.AsConfigErrors(err); len(ces) > 0 {
		return &exitError{exitConfig, fmt.Errorf("%d problem(s) in the pipeline:\n%v", len(ces), ces)}
	}
	return &exitError{exitFailed, err}
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// parseShard reads "--shard i/N"; without it a Kubernetes Indexed Job's
// JOB_COMPLETION_INDEX and --shards N are used.
func parseShard(s string, shards int) (int, int, error) {
	if s == "" {
		if shards <= 1 {
			return 0, 1, nil
		}
		idx := os.Getenv("JOB_COMPLETION_INDEX")
		if idx == "" {
			return 0, 0, errors.New("--shards without --shard needs JOB_COMPLETION_INDEX (a Kubernetes Indexed Job)")
		}
		s = idx + "/" + strconv.Itoa(shards)
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("--shard %q: want i/N with 0 <= i < N, e.g. 0/4", s)
	}
	return i, n, nil
}

func newRunCmd(stderr io.Writer) *cobra.Command {
	var (
		fresh      bool
		reportPath string
		shard      string
		shards     int
		workers    int
		progress   string
		logFormat  string
		logLevel   string
		grace      time.Duration
		metrics    string
		cpuProfile string
	)
	cmd := &cobra.Command{
		Use:   "run PIPELINE.yaml",
		Short: "Run a pipeline, resuming from its saved progress",
		Long: `Run a pipeline. Progress is saved as rows are acknowledged; a run that was
stopped (Ctrl-C, SIGTERM, a crash) resumes where it stopped when started
again. --fresh ignores saved progress and starts over.`,
		Args: usage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args[0])
			if err != nil {
				return err
			}
			if workers > 0 {
				cfg.Workers = workers
			}
			si, sn, err := parseShard(shard, shards)
			if err != nil {
				return &exitError{exitConfig, err}
			}
			// Nothing the run prints holds a secret of the pipeline file.
			red := redact.New(cfg.Secrets()...)
			stderr := red.Writer(stderr)
			log := newLogger(stderr, logFormat, logLevel)
			ctx, abort, releaseSignals := signalContexts(stderr)
			defer releaseSignals()
			opts := engine.Options{
				Logger: log, Version: version, Fresh: fresh, Shard: si, Shards: sn,
				Abort: abort, Grace: grace,
			}
			bar := newProgressView(stderr, progress, log)
			opts.Progress, opts.ProgressEvery = bar.update, bar.every
			if metrics != "" {
				m := newRunMetrics(cfg.Name)
				_, stopMetrics, err := serveMetrics(metrics, m, log)
				if err != nil {
					return &exitError{exitFailed, fmt.Errorf("--metrics-addr: %w", err)}
				}
				defer stopMetrics()
				opts.Progress = func(p engine.Progress) { m.update(p); bar.update(p) }
			}
			logRunDuration(cfg, &opts, log, sn) // once, at the start: rows at the sink's rate
			stopProfile, err := startCPUProfile(cpuProfile, stderr)
			if err != nil {
				return &exitError{exitFailed, err}
			}
			rep, err := engine.New(cfg, opts).Run(ctx)
			stopProfile()
			bar.done()
			return finishRun(runOutput{stderr: stderr, log: log, json: logFormat == "json", pipeline: args[0], reportPath: reportPath, red: red}, rep, err)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&fresh, "fresh", false, "ignore saved progress and start over (message ids stay the same)")
	f.StringVar(&reportPath, "report", "", "write the run's summary as JSON to this file")
	f.StringVar(&shard, "shard", "", "run shard i of N (i/N): only the splits that hash to it")
	f.IntVar(&shards, "shards", 0, "number of shards, with the shard index from JOB_COMPLETION_INDEX")
	f.IntVar(&workers, "workers", 0, "splits read in parallel (overrides the pipeline's workers)")
	enumVar(f, &progress, "progress", []string{"auto", "bar", "log", "none"}, "progress display: a bar on a terminal, log lines elsewhere")
	enumVar(f, &logFormat, "log-format", []string{"text", "json"}, "log format; json also makes the summary one JSON object")
	enumVar(f, &logLevel, "log-level", []string{"info", "debug", "warn", "error"}, "log level")
	f.StringVar(&metrics, "metrics-addr", "", "serve Prometheus metrics on this address (e.g. :9090)")
	f.DurationVar(&grace, "grace", time.Minute, "after a stop signal, how long in-flight rows may take to deliver")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof reads it)")
	return cmd
}

// startCPUProfile profiles the process into path until stop is called; ""
// profiles nothing. A slow run's profile is what a performance report needs.
func startCPUProfile(path string, stderr io.Writer) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(stderr, "error: --cpuprofile:", err)
		}
	}, nil
}

// signalContexts returns a context canceled by the first SIGINT/SIGTERM
// (stop reading, deliver what is in flight) and one canceled by the second
// (abandon delivery now). release, once the run is over, stops catching
// the signals and ends the goroutine that waits for them.
func signalContexts(stderr io.Writer) (stop, abort context.Context, release func()) {
	stop, cancelStop := context.WithCancel(context.Background())
	abort, cancelAbort := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		select {
		case <-ch:
		case <-done:
			return
		}
		fmt.Fprintln(stderr, "\nStopping: delivering rows in flight and saving progress (signal again to abandon them)...")
		cancelStop()
		select {
		case <-ch:
			cancelAbort()
		case <-done:
		}
	}()
	return stop, abort, func() {
		signal.Stop(ch)
		close(done)
		<-ended // nothing is written to stderr after the run
		cancelStop()
		cancelAbort()
	}
}

func writeReport(path string, rep *engine.Report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func newValidateCmd(stdout io.Writer) *cobra.Command {
	var format string
	var source bool
	cmd := &cobra.Command{
		Use:   "validate PIPELINE.yaml",
		Short: "Check a pipeline offline; exit 2 on config errors",
		Long: `Check a pipeline without running it: every field, every plugin's own checks,
and the columns the transforms read against the data's, where that is cheap
and offline (a local Parquet footer, CSV header or the first NDJSON lines).
--source also reads an S3 object's footer or first bytes, or a BigQuery
table's metadata (a dry run for a query), which costs requests; without
it, validate contacts neither and says the columns were not checked.`,
		Args: usage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Sends nothing: a secret whose variable is unset is a warning.
			cfg, err := config.LoadFile(args[0], config.LoadOptions{SecretsOptional: true})
			var warnings config.ConfigErrors
			var check engine.ColumnCheck
			if err == nil {
				warnings = cfg.Warnings
				if w := destinationWarning(cfg); w != nil { // destinations that drop old events
					warnings = append(warnings, w)
				}
				check, err = buildOffline(cfg, source)
			}
			ces := config.AsConfigErrors(err)
			if format == "json" {
				list := func(es config.ConfigErrors) []map[string]any {
					out := []map[string]any{}
					for _, e := range es {
						out = append(out, map[string]any{"file": e.File, "line": e.Line, "col": e.Col,
							"path": e.Path, "code": e.Code, "message": e.Msg, "hint": e.Hint})
					}
					return out
				}
				out := list(ces)
				if err != nil && len(ces) == 0 {
					out = append(out, map[string]any{"file": args[0], "code": "error", "message": err.Error()})
				}
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				columns := map[string]any{"checked": check.Where != "" && check.Skipped == "", "read": check.Columns}
				if check.Where != "" {
					columns["where"] = check.Where
				}
				if note := columnsNote(check, cfg, args[0]); note != "" {
					columns["note"] = note
				}
				enc.Encode(map[string]any{"valid": err == nil, "errors": out, "warnings": list(warnings), "columns": columns})
				if err != nil {
					return &exitError{exitConfig, nil}
				}
				return nil
			}
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if err != nil {
				return configExit(err)
			}
			if note := columnsNote(check, cfg, args[0]); note != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "note:", note)
			}
			fmt.Fprintf(stdout, "%s: pipeline %q is valid: source %s, %d transform(s), sink %s\n",
				args[0], cfg.Name, cfg.Source.Name, len(cfg.Transforms), cfg.Sink.Name)
			if check.Skipped == "" && check.Where != "" {
				fmt.Fprintf(stdout, "columns: the %d read from the source are in %s\n", len(check.Columns), check.Where)
			}
			return nil
		},
	}
	enumVar(cmd.Flags(), &format, "format", []string{"text", "json"}, "output")
	cmd.Flags().BoolVar(&source, "source", false, "also check the columns against an S3 or BigQuery source's data (a few requests: a listing and one object's footer or first bytes; a table's metadata; a query's dry run)")
	return cmd
}

// columnsNote says in one line why the columns the pipeline reads were not
// checked against the data, and how to check them; "" when they were.
func columnsNote(c engine.ColumnCheck, cfg *config.Pipeline, path string) string {
	switch {
	case c.Skipped == "":
		return ""
	case c.Remote:
		return fmt.Sprintf("the columns the pipeline reads were not checked against the data: that takes a request to the %s source, which validate sends only with --source (`backfill validate --source %s`)",
			cfg.Source.Name, path)
	}
	return "the columns the pipeline reads were not checked against the data: " + c.Skipped
}

// buildOffline constructs every plugin, which checks what the spec alone
// cannot, compares the columns the pipeline reads with the data's where
// the source names them cheaply (engine.CheckColumns: a local file's
// footer, header or first lines; with source, an S3 object's or a BigQuery
// table's too), and closes the plugins unopened: no row is read, nothing
// written or sent. Data that cannot be read leaves the columns unchecked
// (check.Skipped says why); with source, that is an error.
func buildOffline(cfg *config.Pipeline, source bool) (engine.ColumnCheck, error) {
	env := &pipeline.Env{Name: cfg.Name, Version: version, Logger: slog.New(slog.DiscardHandler),
		State: pipeline.NewMemoryState(nil, nil), Shards: 1}
	b, err := engine.Build(cfg, env, nil, nil)
	if err != nil {
		return engine.ColumnCheck{}, err
	}
	defer b.Close(context.Background(), env.Logger)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	check, err := engine.CheckColumns(ctx, b, source)
	if err != nil && len(config.AsConfigErrors(err)) == 0 {
		// A service's error text may echo what it was sent.
		red := redact.New(cfg.Secrets()...)
		check.Skipped = red.String(check.Skipped)
		if !source {
			return check, nil // the note says why
		}
		return check, errors.New(red.String("--source: reading the data's columns: " + err.Error()))
	}
	return check, err
}

func newPluginsCmd(stdout io.Writer) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "plugins [NAME]",
		Short: "List the sources, transforms and sinks, or document one",
		Args:  usage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg := config.Default
			if format == "markdown" {
				writePluginsMarkdown(stdout, reg, args)
				return nil
			}
			if len(args) == 0 {
				for _, k := range []config.PluginKind{config.SourceKind, config.TransformKind, config.SinkKind} {
					fmt.Fprintf(stdout, "%ss:\n", k)
					for _, n := range reg.Names(k) {
						p, _ := reg.Lookup(k, n)
						fmt.Fprintf(stdout, "  %-14s %s\n", n, p.Spec.Summary)
					}
				}
				fmt.Fprintln(stdout, "\nbackfill plugins NAME documents every field of one; backfill plugins pipeline, the pipeline file's own.")
				return nil
			}
			if args[0] == "pipeline" {
				config.WritePipelineDoc(stdout)
				return nil
			}
			found := false
			for _, p := range reg.All() {
				if p.Name == args[0] {
					if found {
						fmt.Fprintln(stdout)
					}
					config.WritePluginDoc(stdout, p)
					found = true
				}
			}
			if !found {
				var names []string
				for _, p := range reg.All() {
					names = append(names, p.Name)
				}
				hint := ""
				if s := config.Suggest(args[0], names); s != "" {
					hint = fmt.Sprintf(" (did you mean %q?)", s)
				}
				return &exitError{exitConfig, fmt.Errorf("no plugin named %q%s; `backfill plugins` lists them", args[0], hint)}
			}
			return nil
		},
	}
	enumVar(cmd.Flags(), &format, "format", []string{"text", "markdown"}, "output; markdown is the reference in PLUGINS.md")
	return cmd
}

// writePluginsMarkdown writes the plugin reference (PLUGINS.md).
func writePluginsMarkdown(w io.Writer, reg *config.Registry, names []string) {
	fmt.Fprintf(w, "# Pipeline and plugin reference\n\nGenerated from the specs by `backfill plugins --format markdown`;\n"+
		"`backfill plugins NAME` (or `pipeline`) prints the same in a terminal.\n\n")
	if len(names) == 0 || names[0] == "pipeline" {
		config.WritePipelineMarkdown(w)
	}
	for _, k := range []config.PluginKind{config.SourceKind, config.TransformKind, config.SinkKind} {
		fmt.Fprintf(w, "## %ss\n\n", strings.ToUpper(k.String()[:1])+k.String()[1:])
		for _, n := range reg.Names(k) {
			if len(names) > 0 && names[0] != n {
				continue
			}
			p, _ := reg.Lookup(k, n)
			config.WritePluginMarkdown(w, p)
		}
	}
}

func newSchemaCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of pipeline files (for editors and linters)",
		Args:  usage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(config.JSONSchema(nil))
		},
	}
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print backfill's version",
		Args:  usage(cobra.NoArgs),
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintf(stdout, "backfill %s\n", version)
		},
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
