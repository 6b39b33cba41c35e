package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/backfillhq/backfill/internal/testkit/filewait"
	"github.com/backfillhq/backfill/internal/testkit/ndjsontest"
	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/pipeline/engine"
)

// repoRoot is where configs/ lives, so tests run the shipped pipelines.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func runCLI(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	wd, _ := os.Getwd()
	if dir != "" {
		if err := os.Chdir(dir); err != nil {
			t.Fatal(err)
		}
		defer os.Chdir(wd)
	}
	code := execute(args, &out, &errb)
	return code, out.String(), errb.String()
}

// messages reads an NDJSON output file.
func messages(t *testing.T, path string) []map[string]any { return ndjsontest.Read(t, path) }

func TestQuickstartRunsFromTheRepoRoot(t *testing.T) {
	root := repoRoot(t)
	work := t.TempDir()
	// Run the shipped pipeline as the README does, with its state and
	// output moved to a temp dir.
	cfg, err := os.ReadFile(filepath.Join(root, "configs", "quickstart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("BACKFILL_OUT", work)
	code, _, stderr := runCLI(t, root, "run", "--report", filepath.Join(work, "report.json"), filepath.Join(root, "configs", "quickstart.yaml"))
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var rep map[string]any
	data, _ := os.ReadFile(filepath.Join(work, "report.json"))
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep["destination"] != filepath.Join(work, "quickstart.ndjson") || !strings.Contains(stderr, "delivered  3000 -> "+filepath.Join(work, "quickstart.ndjson")) {
		t.Errorf("destination %v; summary:\n%s", rep["destination"], stderr)
	}
	msgs := messages(t, filepath.Join(work, "quickstart.ndjson"))
	if len(msgs) == 0 || float64(len(msgs)) != rep["rows_delivered"].(float64) {
		t.Fatalf("%d messages, report %v", len(msgs), rep)
	}
	if rep["rows_read"].(float64) != rep["rows_delivered"].(float64)+rep["rows_rejected"].(float64)+rep["rows_filtered"].(float64) {
		t.Fatalf("rows unaccounted for: %v", rep)
	}
	ids := map[string]bool{}
	withTraits := 0
	for _, m := range msgs {
		if m["type"] != "track" || m["timestamp"] == nil || m["event"] == nil {
			t.Fatalf("bad message %v", m)
		}
		// Segment ignores top-level traits on track: they go in context.traits.
		if _, ok := m["traits"]; ok {
			t.Fatalf("track message with top-level traits: %v", m)
		}
		if ctx, _ := m["context"].(map[string]any); ctx != nil {
			if tr, _ := ctx["traits"].(map[string]any); tr["email"] != nil {
				withTraits++
			}
		}
		if !strings.HasPrefix(m["timestamp"].(string), "2024-") {
			t.Fatalf("timestamp not kept: %v", m["timestamp"])
		}
		ids[m["messageId"].(string)] = true
	}
	if len(ids) != len(msgs) {
		t.Fatalf("%d distinct message ids for %d messages", len(ids), len(msgs))
	}
	if withTraits == 0 {
		t.Fatal("no message carries context.traits.email: the quick start's traits were lost")
	}
	if !bytes.Contains(cfg, []byte("BACKFILL_OUT")) {
		t.Fatal("quickstart.yaml should let tests move its output with ${BACKFILL_OUT:-...}")
	}
	if !strings.Contains(stderr, "delivered") {
		t.Errorf("no summary on stderr:\n%s", stderr)
	}
}

func TestValidateExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: x\nsource:\n  file: {paht: a.csv}\nsink: {file: {path: out.ndjson}}\nworkerz: 2\n"), 0o644)
	code, _, stderr := runCLI(t, "", "validate", bad)
	if code != exitConfig {
		t.Fatalf("exit %d, want %d\n%s", code, exitConfig, stderr)
	}
	for _, want := range []string{"bad.yaml:3:10", `did you mean "path"?`, "bad.yaml:5:1", `did you mean "workers"?`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	code, stdout, _ := runCLI(t, "", "validate", "--format", "json", bad)
	var res struct {
		Valid  bool
		Errors []map[string]any
	}
	if code != exitConfig || json.Unmarshal([]byte(stdout), &res) != nil || res.Valid || len(res.Errors) != 2 {
		t.Fatalf("json validate: exit %d %s", code, stdout)
	}
	good := filepath.Join(repoRoot(t), "configs", "quickstart.yaml")
	if code, out, errs := runCLI(t, "", "validate", good); code != 0 {
		t.Fatalf("quickstart invalid: %s %s", out, errs)
	}
}

// The Kubernetes manifests in configs/kubernetes run backfill with flags
// it takes: each container's args, less the pipeline file, parse.
func TestKubernetesManifestsUseRealFlags(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "configs", "kubernetes", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no manifests")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var manifest any
		if err := yaml.Unmarshal(data, &manifest); err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		commands := containerArgs(manifest)
		if len(commands) == 0 {
			t.Errorf("%s: no container runs backfill", filepath.Base(f))
		}
		for _, args := range commands {
			if len(args) < 2 || args[0] != "run" || !strings.HasSuffix(args[len(args)-1], ".yaml") {
				t.Errorf("%s: args %q are not run ... PIPELINE.yaml", filepath.Base(f), args)
				continue
			}
			if code, _, errs := runCLI(t, "", append(args[:len(args)-1:len(args)-1], "--help")...); code != 0 {
				t.Errorf("%s: backfill %s: exit %d\n%s", filepath.Base(f), strings.Join(args, " "), code, errs)
			}
		}
	}
}

// containerArgs finds the args of every container in a manifest.
func containerArgs(node any) [][]string {
	var out [][]string
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			if k != "containers" {
				out = append(out, containerArgs(v)...)
				continue
			}
			list, _ := v.([]any)
			for _, c := range list {
				c, _ := c.(map[string]any)
				args, _ := c["args"].([]any)
				var strs []string
				for _, a := range args {
					strs = append(strs, fmt.Sprint(a))
				}
				out = append(out, strs)
			}
		}
	case []any:
		for _, v := range n {
			out = append(out, containerArgs(v)...)
		}
	}
	return out
}

func TestEveryShippedConfigValidates(t *testing.T) {
	t.Setenv("SEGMENT_WRITE_KEY", "test-key")
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "configs", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no configs")
	}
	for _, f := range files {
		if code, out, errs := runCLI(t, "", "validate", f); code != 0 {
			t.Errorf("%s: exit %d\n%s%s", filepath.Base(f), code, out, errs)
		}
	}
}

func TestPluginsDocumentsEveryField(t *testing.T) {
	code, out, _ := runCLI(t, "", "plugins")
	if code != 0 || !strings.Contains(out, "file") || !strings.Contains(out, "map") {
		t.Fatalf("plugins: %d %s", code, out)
	}
	code, out, _ = runCLI(t, "", "plugins", "map")
	if code != 0 || !strings.Contains(out, "properties") || !strings.Contains(out, "Example") {
		t.Fatalf("plugins map: %d %s", code, out)
	}
	// The pipeline file's own fields, every one the loader takes.
	code, out, _ = runCLI(t, "", "plugins", "pipeline")
	for _, want := range []string{"state (string", "max_rejects (string, default \"10%\")", "primary_key (list of string)", "**Syncs**"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("plugins pipeline: %d, no %q in\n%s", code, want, out)
		}
	}
	if code, _, _ := runCLI(t, "", "plugins", "nope"); code != exitConfig {
		t.Fatalf("unknown plugin exit %d", code)
	}
	code, out, _ = runCLI(t, "", "schema")
	var schema map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &schema) != nil || schema["properties"] == nil {
		t.Fatalf("schema: %d %.200s", code, out)
	}
}

// buildBinary builds the CLI once for tests that signal a real process.
// startRun starts `bin run cfg`, its stderr kept; exited has Wait's
// result once it ends.
func startRun(t *testing.T, bin, cfg string, flags ...string) (*exec.Cmd, *bytes.Buffer, <-chan error) {
	t.Helper()
	cmd := exec.Command(bin, append(append([]string{"run", "--progress", "none"}, flags...), cfg)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return cmd, &stderr, exited
}

// killWhen starts the binary on cfg (with flags) and SIGKILLs it once
// ready says so, looking every 2 ms; the test fails if the run ends
// first, or if ready is not so within 2 minutes (what names it).
func killWhen(t *testing.T, bin, cfg, what string, ready func() bool, flags ...string) {
	t.Helper()
	cmd, stderr, exited := startRun(t, bin, cfg, flags...)
	deadline := time.After(2 * time.Minute)
	for !ready() {
		select {
		case err := <-exited:
			t.Fatalf("the run ended (%v) before %s\n%s", err, what, stderr.String())
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			t.Fatalf("not %s in time\n%s", what, stderr.String())
		case <-time.After(2 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "backfill")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestKilledRunResumesExactlyOnce stops a real run part way with SIGTERM
// (what `kill` and Kubernetes send), reruns it, and checks every row was
// written to the file sink exactly once.
func TestKilledRunResumesExactlyOnce(t *testing.T) {
	killAndResume(t, syscall.SIGTERM)
}

// TestKilledHardRunResumesWithoutLoss kills a run with SIGKILL, which gives
// it no chance to save: rows written after the last checkpoint are written
// again on resume, as identical messages with the same messageId (which
// Segment deduplicates); none is lost.
func TestKilledHardRunResumesWithoutLoss(t *testing.T) {
	killAndResume(t, syscall.SIGKILL)
}

func killAndResume(t *testing.T, sig syscall.Signal) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	const files, rows = 4, 50_000
	for i := 0; i < files; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("orders-%d.parquet", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := sampledata.WriteOrdersParquetRowGroups(f, rows, int64(i), 5000); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	out := filepath.Join(dir, "out.ndjson")
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`name: killme
source: {file: {path: %s/*.parquet}}
transforms:
  - map: {type: track, event: event_name, userId: customer_id, anonymousId: anonymous_id, timestamp: created_at, properties: {total: amount}}
sink: {file: {path: %s}}
state: %s/state
workers: 2
batch_rows: 1000
checkpoint_interval: 50ms
`, dir, out, dir)), 0o644)

	cmd, stderr, exited := startRun(t, bin, cfg)
	// Stop it once some, but not all, rows are out: the whole run takes a
	// fraction of a second, less than between two progress lines, so the
	// signal is the output file's growth (filewait wakes on each write).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	grown := make(chan error, 1)
	go func() { grown <- filewait.Size(ctx, out, 2<<20+1) }()
	select {
	case err := <-grown:
		if err != nil {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("no output in time (%v)\n%s", err, stderr.String())
		}
	case err := <-exited:
		cancel()
		<-grown // ends with ctx
		t.Fatalf("the run ended (%v) before it could be stopped part way\n%s", err, stderr.String())
	}
	cmd.Process.Signal(sig)
	err := <-exited
	if sig == syscall.SIGTERM {
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != exitInterrupted {
			t.Fatalf("first run: %v, want exit %d\n%s", err, exitInterrupted, stderr.String())
		}
		if !strings.Contains(stderr.String(), "resume with: backfill run") {
			t.Errorf("no resume hint:\n%s", stderr.String())
		}
	}
	// A SIGKILL can land mid-write and leave a partial last line, which the
	// resumed run cuts off: count the complete lines.
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	firstCount := bytes.Count(data, []byte("\n"))
	if firstCount == 0 || firstCount >= files*rows {
		t.Fatalf("first run wrote %d messages: the stop came too early or too late to test resuming", firstCount)
	}

	second := exec.Command(bin, "run", "--progress", "none", cfg)
	var stderr2 bytes.Buffer
	second.Stderr = &stderr2
	if err := second.Run(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, stderr2.String())
	}
	msgs := messages(t, out)
	seen := make(map[string]int, len(msgs))
	first := make(map[string]string, len(msgs))
	for _, m := range msgs {
		id := m["messageId"].(string)
		seen[id]++
		line, _ := json.Marshal(m)
		if prev, ok := first[id]; ok && prev != string(line) {
			t.Fatalf("message %s resent with different content:\n%s\n%s", id, prev, line)
		}
		first[id] = string(line)
	}
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	if sig == syscall.SIGKILL {
		if len(seen) != files*rows {
			t.Fatalf("after resume: %d distinct messages, want %d (first run wrote %d)", len(seen), files*rows, firstCount)
		}
		t.Logf("SIGKILL: %d rows written twice (identical messageIds), none lost", dups)
		return
	}
	if len(msgs) != files*rows || len(seen) != files*rows || dups != 0 {
		t.Fatalf("after resume: %d lines, %d distinct ids, %d duplicated; want %d each once (first run wrote %d)",
			len(msgs), len(seen), dups, files*rows, firstCount)
	}
}

// TestPreviewReplayConfig previews the archive replay: messages keep their
// archived timestamps, lose the fields a replay must lose, and carry the
// integrations object; nothing is written.
func TestPreviewReplayConfig(t *testing.T) {
	root := repoRoot(t)
	t.Setenv("BACKFILL_OUT", t.TempDir())
	code, out, errs := runCLI(t, root, "preview", "--rows", "200", "--show", "5", "configs/segment-replay.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	n := 0
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			break
		}
		n++
		for _, gone := range []string{"sentAt", "receivedAt", "originalTimestamp", "projectId", "version", "channel", "writeKey", "_metadata"} {
			if _, ok := m[gone]; ok {
				t.Errorf("%s not stripped", gone)
			}
		}
		if ts, _ := m["timestamp"].(string); !strings.HasPrefix(ts, "2024-01-01T") {
			t.Errorf("timestamp %q is not the archived one", ts)
		}
		integ, _ := m["integrations"].(map[string]any)
		if integ["All"] != false || integ["Amplitude"] != true {
			t.Errorf("integrations %v", integ)
		}
		if id, _ := m["messageId"].(string); strings.HasPrefix(id, "msg-") || len(id) != 36 {
			t.Errorf("messageId %q is not a re-derived one", id)
		}
	}
	if n != 5 {
		t.Fatalf("printed %d messages, want 5:\n%s", n, out)
	}
	if !strings.Contains(out, "read 200 rows: 200 would be sent, 0 rejected") {
		t.Errorf("no counts:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("BACKFILL_OUT"), "segment-replay.ndjson")); err == nil {
		t.Error("preview wrote the sink's file")
	}
}

// TestPluginsReferenceIsCurrent keeps PLUGINS.md in step with the specs.
func TestPluginsReferenceIsCurrent(t *testing.T) {
	code, out, _ := runCLI(t, "", "plugins", "--format", "markdown")
	if code != 0 {
		t.Fatal(code)
	}
	want, err := os.ReadFile(filepath.Join(repoRoot(t), "PLUGINS.md"))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Fatal("PLUGINS.md is stale: go run ./cmd/backfill plugins --format markdown > PLUGINS.md")
	}
	for _, p := range []string{"`file`", "`s3`", "`bigquery`", "`map`", "`timestamp`", "`strip`", "`integrations`",
		"`message_id`", "`filter`", "`segment`"} {
		if !strings.Contains(out, p) {
			t.Errorf("reference lacks %s", p)
		}
	}
}

// Unreadable Parquet files (cut short, empty) among good ones fail as
// splits: the good files are delivered, the summary names every bad one,
// and a rerun after fixing them reads only those.
func TestBadParquetFilesFailAsSplits(t *testing.T) {
	dir := t.TempDir()
	var good bytes.Buffer
	if err := sampledata.WriteOrdersParquet(&good, 500, 1); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"a.parquet": good.Bytes(), "b.parquet": good.Bytes()[:good.Len()/2], "c.parquet": nil}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "p.yaml")
	yaml := "name: bad-files\nsource:\n  file: {path: " + dir + "/*.parquet}\ntransforms:\n" +
		"  - map: {type: track, event: event_name, userId: customer_id, anonymousId: anonymous_id}\n" +
		"sink:\n  file: {path: " + dir + "/out.ndjson}\nstate: " + dir + "/state\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, "", "run", "--progress", "none", cfg)
	if code != exitFailed || !strings.Contains(errs, "failed     2 split(s): "+dir+"/b.parquet, "+dir+"/c.parquet") ||
		!strings.Contains(errs, "not a readable Parquet file") {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	if n := len(messages(t, filepath.Join(dir, "out.ndjson"))); n != 500 {
		t.Fatalf("%d messages, want the good file's 500", n)
	}
	for _, name := range []string{"b.parquet", "c.parquet"} {
		if err := os.WriteFile(filepath.Join(dir, name), good.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, errs := runCLI(t, "", "run", "--progress", "none", cfg); code != 0 || !strings.Contains(errs, "1 done before") {
		t.Fatalf("rerun after the fix: exit %d\n%s", code, errs)
	}
	if n := len(messages(t, filepath.Join(dir, "out.ndjson"))); n != 1500 {
		t.Fatalf("%d messages after the rerun, want 1500", n)
	}
}

// The summary says when checkpoint saves failed and were retried, and
// stays silent when none did.
func TestSummaryCountsRetriedCheckpointSaves(t *testing.T) {
	var b strings.Builder
	writeSummary(&b, &engine.Report{Pipeline: "orders", Status: "ok", CheckpointSaveFailures: 2})
	if !strings.Contains(b.String(), "checkpoint 2 save(s) failed and were retried") {
		t.Fatalf("summary:\n%s", b.String())
	}
	b.Reset()
	writeSummary(&b, &engine.Report{Pipeline: "orders", Status: "ok"})
	if strings.Contains(b.String(), "save(s) failed") {
		t.Fatalf("summary without failures:\n%s", b.String())
	}
}

func TestRunWritesCPUProfile(t *testing.T) {
	root := repoRoot(t)
	work := t.TempDir()
	t.Setenv("BACKFILL_OUT", work)
	prof := filepath.Join(work, "cpu.pprof")
	code, _, stderr := runCLI(t, root, "run", "--progress", "none", "--cpuprofile", prof, filepath.Join(root, "configs", "quickstart.yaml"))
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	data, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	// pprof profiles are gzipped protobuf.
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		t.Fatalf("not a CPU profile: %d bytes %q", len(data), data[:min(len(data), 8)])
	}

	code, _, stderr = runCLI(t, root, "run", "--progress", "none", "--cpuprofile", filepath.Join(work, "missing", "cpu.pprof"), filepath.Join(root, "configs", "quickstart.yaml"))
	if code != exitFailed || !strings.Contains(stderr, "--cpuprofile") {
		t.Fatalf("unwritable profile: exit %d\n%s", code, stderr)
	}
}
