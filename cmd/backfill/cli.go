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

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
	"github.com/backfillhq/backfill/pipeline/state"
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

// loadConfig is the one parse -> validate path run, validate and preview
// share. Config problems exit with code 2.
func loadConfig(path string) (*config.Pipeline, error) {
	cfg, err := config.LoadFile(path, config.LoadOptions{})
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
			stopProfile, err := startCPUProfile(cpuProfile, stderr)
			if err != nil {
				return &exitError{exitFailed, err}
			}
			rep, err := engine.New(cfg, opts).Run(ctx)
			stopProfile()
			bar.done()
			if rep != nil && !errors.As(err, new(*state.LockedError)) { // nothing ran: the error says it all
				writeSummary(stderr, rep)
				if reportPath != "" {
					if werr := writeReport(reportPath, rep); werr != nil {
						fmt.Fprintln(stderr, "error: writing report:", werr)
					}
				}
			}
			switch {
			case err == nil:
				return nil
			case errors.Is(err, engine.ErrInterrupted):
				fmt.Fprintf(stderr, "Stopped. Progress is saved; resume with: backfill run %s\n", args[0])
				return &exitError{exitInterrupted, nil}
			case len(config.AsConfigErrors(err)) > 0:
				return configExit(err)
			case errors.As(err, new(*state.LockedError)):
				return &exitError{exitLocked, err}
			default:
				if rep != nil && rep.Checkpoint != "" {
					fmt.Fprintf(stderr, "Progress up to the failure is saved; fix the cause and resume with: backfill run %s\n", args[0])
				}
				return &exitError{exitFailed, err}
			}
		},
	}
	f := cmd.Flags()
	f.BoolVar(&fresh, "fresh", false, "ignore saved progress and start over (message ids stay the same)")
	f.StringVar(&reportPath, "report", "", "write the run's summary as JSON to this file")
	f.StringVar(&shard, "shard", "", "run shard i of N (i/N): only the splits that hash to it")
	f.IntVar(&shards, "shards", 0, "number of shards, with the shard index from JOB_COMPLETION_INDEX")
	f.IntVar(&workers, "workers", 0, "splits read in parallel (overrides the pipeline's workers)")
	f.StringVar(&progress, "progress", "auto", "progress display: auto, bar, log, none")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
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

func writeSummary(w io.Writer, r *engine.Report) {
	fmt.Fprintf(w, "\n%s: %s in %s\n", r.Pipeline, r.Status, time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond))
	fmt.Fprintf(w, "  splits     %d (%d done now, %d already done before)\n", r.Splits, r.SplitsDone, r.SplitsSkipped)
	fmt.Fprintf(w, "  read       %d rows (%.0f rows/s)\n", r.RowsRead, r.RowsPerSecond)
	fmt.Fprintf(w, "  delivered  %d", r.RowsDelivered)
	if r.Destination != "" {
		fmt.Fprintf(w, " -> %s", r.Destination)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  rejected   %d", r.RowsRejected)
	if r.RowsRejected > 0 {
		fmt.Fprintf(w, " -> %s", r.DeadLetters)
		var parts []string
		for _, k := range sortedKeys(r.RejectsByStage) {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.RejectsByStage[k]))
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
		if r.DeadLetterCopy != "" {
			fmt.Fprintf(w, "\n             copied to %s", r.DeadLetterCopy)
		}
	}
	fmt.Fprintln(w)
	if r.RowsFiltered > 0 {
		fmt.Fprintf(w, "  filtered   %d\n", r.RowsFiltered)
	}
	if r.RowsSkipped > 0 {
		fmt.Fprintf(w, "  skipped    %d rows already delivered by an earlier run\n", r.RowsSkipped)
	}
	if r.RowsUnacked > 0 {
		fmt.Fprintf(w, "  unacked    %d rows read but not acknowledged: the run stopped first (a resume reads them again)\n", r.RowsUnacked)
	}
	if r.CheckpointSaveFailures > 0 {
		fmt.Fprintf(w, "  checkpoint %d save(s) failed and were retried (see the log)\n", r.CheckpointSaveFailures)
	}
	for _, k := range sortedKeys(r.Sink) {
		fmt.Fprintf(w, "  sink %-10s %d\n", k, r.Sink[k])
	}
	if n := len(r.SplitsChanged); n > 0 {
		list := r.SplitsChanged[:min(n, 5)]
		more := ""
		if n > len(list) {
			more = fmt.Sprintf(" and %d more", n-len(list))
		}
		fmt.Fprintf(w, "  changed    %d split(s) read again from the start, their input changed since an earlier run: %s%s\n",
			n, strings.Join(list, ", "), more)
	}
	if len(r.SplitsFailed) > 0 {
		fmt.Fprintf(w, "  failed splits: %s\n", strings.Join(r.SplitsFailed, ", "))
	}
	if r.Splits > 0 && r.SplitsSkipped == r.Splits && r.Status == "ok" {
		fmt.Fprintln(w, "  nothing to do: every split was delivered by an earlier run (--fresh starts over)")
	}
	if r.Error != "" && r.Status != "interrupted" {
		fmt.Fprintf(w, "  error      %s\n", r.Error)
	}
}

func newValidateCmd(stdout io.Writer) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "validate PIPELINE.yaml",
		Short: "Check a pipeline offline; exit 2 on config errors",
		Args:  usage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.LoadFile(args[0], config.LoadOptions{})
			if err == nil {
				err = buildOffline(cfg)
			}
			ces := config.AsConfigErrors(err)
			if format == "json" {
				out := []map[string]any{}
				for _, e := range ces {
					out = append(out, map[string]any{"file": e.File, "line": e.Line, "col": e.Col,
						"path": e.Path, "code": e.Code, "message": e.Msg, "hint": e.Hint})
				}
				if err != nil && len(ces) == 0 {
					out = append(out, map[string]any{"file": args[0], "code": "error", "message": err.Error()})
				}
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				enc.Encode(map[string]any{"valid": err == nil, "errors": out})
				if err != nil {
					return &exitError{exitConfig, nil}
				}
				return nil
			}
			if err != nil {
				return configExit(err)
			}
			fmt.Fprintf(stdout, "%s: pipeline %q is valid: source %s, %d transform(s), sink %s\n",
				args[0], cfg.Name, cfg.Source.Name, len(cfg.Transforms), cfg.Sink.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output: text or json")
	return cmd
}

// buildOffline constructs every plugin, which checks what the spec alone
// cannot, and closes them unopened: nothing is read, written or sent.
func buildOffline(cfg *config.Pipeline) error {
	env := &pipeline.Env{Name: cfg.Name, Version: version, Logger: slog.New(slog.DiscardHandler),
		State: pipeline.NewMemoryState(nil, nil), Shards: 1}
	b, err := engine.Build(cfg, env, nil, nil)
	if err != nil {
		return err
	}
	b.Close(context.Background(), env.Logger)
	return nil
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
				fmt.Fprintln(stdout, "\nbackfill plugins NAME documents every field of one.")
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
				return &exitError{exitConfig, fmt.Errorf("no plugin named %q; `backfill plugins` lists them", args[0])}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text, or markdown (the reference in PLUGINS.md)")
	return cmd
}

// writePluginsMarkdown writes the plugin reference (PLUGINS.md).
func writePluginsMarkdown(w io.Writer, reg *config.Registry, names []string) {
	fmt.Fprintf(w, "# Plugin reference\n\nGenerated from the plugins' specs by `backfill plugins --format markdown`;\n"+
		"`backfill plugins NAME` prints the same in a terminal.\n\n")
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
