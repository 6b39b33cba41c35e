package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/state"
)

type statusJSON struct {
	Pipeline string
	Shards   []shardStatus
}

// statusFixture writes two CSV files with bad amounts and bad dates, and a
// pipeline over them, in a temp dir; it returns the pipeline's path and
// how many rows are bad in each way.
func statusFixture(t *testing.T) (cfg string, badAmount, badDate int) {
	t.Helper()
	dir := t.TempDir()
	for f := 0; f < 2; f++ {
		var b strings.Builder
		b.WriteString("user_id,amount,signed_up_at\n")
		for i := 0; i < 50; i++ {
			amount, date := fmt.Sprint(i), "2024-03-01T10:00:00Z"
			switch {
			case i%10 == 3:
				amount = "12.5"
				badAmount++
			case i%10 == 7:
				date = "yesterday"
				badDate++
			}
			fmt.Fprintf(&b, "u%d-%d,%s,%s\n", f, i, amount, date)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("signups-%d.csv", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg = filepath.Join(dir, "p.yaml")
	yaml := `name: signups
source:
  file:
    path: ` + dir + `/*.csv
    csv: {columns: {amount: int64}}
transforms:
  - map: {type: identify, userId: user_id, timestamp: signed_up_at, traits: {amount: amount}}
  - timestamp: {field: timestamp}
sink:
  file: {path: ` + dir + `/out.ndjson}
state: ` + dir + `/state
max_rejects: none # a fifth of the rows are bad on purpose
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, badAmount, badDate
}

func statusOf(t *testing.T, args ...string) statusJSON {
	t.Helper()
	code, out, errs := runCLI(t, "", append([]string{"status", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errs)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return st
}

func TestStatusShowsProgressAndGroupsDeadLetters(t *testing.T) {
	cfg, badAmount, badDate := statusFixture(t)
	code, out, _ := runCLI(t, "", "status", cfg)
	if code != 0 || !strings.Contains(out, "no saved progress") {
		t.Fatalf("before any run: exit %d\n%s", code, out)
	}
	if code, _, errs := runCLI(t, "", "run", "--progress", "none", cfg); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, errs)
	}
	st := statusOf(t, cfg)
	if len(st.Shards) != 1 {
		t.Fatalf("%+v", st)
	}
	s := st.Shards[0]
	if !s.Saved || s.SplitsDone != 2 || len(s.InProgress) != 0 || s.RowsAcked != 100 {
		t.Fatalf("after a complete run: %+v", s)
	}
	if s.Dead.Rows != int64(badAmount+badDate) || len(s.Dead.Groups) != 2 {
		t.Fatalf("dead letters %+v, want %d bad amounts and %d bad dates", s.Dead, badAmount, badDate)
	}
	for _, g := range s.Dead.Groups {
		switch {
		case g.Stage == "source" && g.Column == "amount":
			if g.Rows != int64(badAmount) || !strings.Contains(g.Example, `expected int64, got "12.5"`) {
				t.Errorf("bad amounts: %+v", g)
			}
		case g.Stage == "transform:timestamp" && g.Column == "timestamp":
			if g.Rows != int64(badDate) || !strings.Contains(g.Example, "yesterday") {
				t.Errorf("bad dates: %+v", g)
			}
		default:
			t.Errorf("unexpected group %+v", g)
		}
	}
	_, text, _ := runCLI(t, "", "status", cfg)
	for _, want := range []string{"2 splits done, 0 in progress, 100 rows acknowledged, 20 dead letters",
		fmt.Sprintf("%8d  source amount", badAmount), "e.g. "} {
		if !strings.Contains(text, want) {
			t.Errorf("text status lacks %q:\n%s", want, text)
		}
	}
}

// A split a stopped run left part-way shows with its acknowledged rows.
func TestStatusShowsSplitsInProgress(t *testing.T) {
	cfg, _, _ := statusFixture(t)
	c, err := config.LoadFile(cfg, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cp := &state.Checkpoint{Version: 1, Name: c.Name, Splits: map[string]state.SplitState{
		"a.csv": {Offset: 50, Done: true}, "b.csv": {Offset: 40}}}
	if err := state.NewDirStore(c.State, c.Name, 0, 1).Save(context.Background(), cp); err != nil {
		t.Fatal(err)
	}
	s := statusOf(t, cfg).Shards[0]
	if s.SplitsDone != 1 || s.RowsAcked != 90 || len(s.InProgress) != 1 || s.InProgress[0] != (splitStatus{"b.csv", 40}) {
		t.Fatalf("%+v", s)
	}
	_, text, _ := runCLI(t, "", "status", cfg)
	if !strings.Contains(text, "in progress   b.csv: 40 rows acknowledged") || !strings.Contains(text, ": 1 split done, 1 in progress, 90 rows acknowledged, 0 dead letters") {
		t.Fatalf("text status:\n%s", text)
	}
}

// --shards N shows every shard; together they hold every row once.
func TestStatusOfAShardedRun(t *testing.T) {
	cfg, badAmount, badDate := statusFixture(t)
	for i := 0; i < 2; i++ {
		if code, _, errs := runCLI(t, "", "run", "--progress", "none", "--shard", fmt.Sprintf("%d/2", i), cfg); code != 0 {
			t.Fatalf("shard %d: exit %d\n%s", i, code, errs)
		}
	}
	if auto := statusOf(t, cfg); len(auto.Shards) != 2 || auto.Shards[1].Shard != "1/2" {
		t.Fatalf("status without --shards on a sharded run's state: %+v", auto)
	}
	if one := statusOf(t, "--shard", "1/2", cfg); len(one.Shards) != 1 || one.Shards[0].Shard != "1/2" {
		t.Fatalf("status --shard 1/2: %+v", one)
	}
	st := statusOf(t, "--shards", "2", cfg)
	var done int
	var acked, dead int64
	for i, s := range st.Shards {
		if s.Shard != fmt.Sprintf("%d/2", i) || !strings.HasSuffix(s.Dead.Path, fmt.Sprintf("-shard-%d-of-2.ndjson", i)) {
			t.Fatalf("shard %d: %+v", i, s)
		}
		done, acked, dead = done+s.SplitsDone, acked+s.RowsAcked, dead+s.Dead.Rows
	}
	if len(st.Shards) != 2 || done != 2 || acked != 100 || dead != int64(badAmount+badDate) {
		t.Fatalf("shards sum to %d splits, %d rows, %d dead letters: %+v", done, acked, dead, st)
	}
}

// A run started while another run of the same pipeline holds the state
// exits 3 and says who holds it, without reading or sending anything.
func TestRunExitsWhileAnotherRunHoldsTheState(t *testing.T) {
	cfg, _, _ := statusFixture(t)
	c, err := config.LoadFile(cfg, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := state.LockFile(state.NewDirStore(c.State, c.Name, 0, 1).Path + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, "", "run", "--progress", "none", cfg)
	if code != exitLocked || !strings.Contains(errs, "another run of this pipeline is running") ||
		!strings.Contains(errs, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "out.ndjson")); err == nil {
		t.Fatal("the refused run wrote output")
	}
	if s := statusOf(t, cfg).Shards[0]; !strings.Contains(s.RunningBy, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("status while a run holds the state: %+v", s)
	}
	unlock()
	if s := statusOf(t, cfg).Shards[0]; s.RunningBy != "" {
		t.Fatalf("status after the run ended: %+v", s)
	}
	if code, _, errs := runCLI(t, "", "run", "--progress", "none", cfg); code != 0 {
		t.Fatalf("after the other run ended: exit %d\n%s", code, errs)
	}
}

// A CSV appended to after a run is read again on the next one: its saved
// progress says it is done, and skipping it would lose the new rows. The
// rows sent before keep their messageIds, so Segment drops those copies.
func TestRunRereadsAnInputThatChanged(t *testing.T) {
	cfg, _, _ := statusFixture(t)
	if code, _, errs := runCLI(t, "", "run", "--progress", "none", cfg); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	csv := filepath.Join(filepath.Dir(cfg), "signups-1.csv")
	f, err := os.OpenFile(csv, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "late-1,5,2024-03-02T10:00:00Z")
	f.Close()
	code, _, errs := runCLI(t, "", "run", "--progress", "none", cfg)
	if code != 0 || !strings.Contains(errs, "changed    1 split(s) read again from the start") || !strings.Contains(errs, csv) {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	msgs := messages(t, filepath.Join(filepath.Dir(cfg), "out.ndjson"))
	ids := map[any]int{}
	for _, m := range msgs {
		ids[m["messageId"]]++
	}
	// 80 valid rows, then signups-1.csv again: its 40 valid rows and the late one.
	if len(msgs) != 121 || len(ids) != 81 {
		t.Fatalf("%d messages with %d distinct ids, want 121 and 81", len(msgs), len(ids))
	}
	if code, _, errs := runCLI(t, "", "run", "--progress", "none", cfg); code != 0 || strings.Contains(errs, "changed") {
		t.Fatalf("a third run of the same input: exit %d\n%s", code, errs)
	}
}

// With the state on S3, the dead letters are copied beside the checkpoint
// before it counts their rows: the machine that wrote the local file can
// go (a Kubernetes pod) and status still finds every one of them.
func TestDeadLettersOutliveTheMachineWithS3State(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "state")
	srv.SetCredentialsEnv(t)
	t.Setenv("AWS_REGION", s3test.Region)
	cfg, badAmount, badDate := statusFixture(t)
	dir := filepath.Dir(cfg)
	yaml, _ := os.ReadFile(cfg)
	local := filepath.Join(dir, "pod-disk", "dead-letters.ndjson")
	yaml = []byte(strings.Replace(string(yaml), "state: "+dir+"/state",
		"state: s3://state/backfills?endpoint="+srv.Endpoint+"&path_style=true\ndead_letter: "+local, 1))
	if err := os.WriteFile(cfg, yaml, 0o644); err != nil {
		t.Fatal(err)
	}
	want := int64(badAmount + badDate)
	for run, args := range [][]string{{}, {"--fresh"}} {
		code, _, errs := runCLI(t, "", append([]string{"run", "--progress", "none"}, append(args, cfg)...)...)
		if code != 0 || !strings.Contains(errs, "copied to s3://state/backfills/signups/checkpoint.dead-letters/") {
			t.Fatalf("run %d: exit %d\n%s", run, code, errs)
		}
		if err := os.RemoveAll(filepath.Join(dir, "pod-disk")); err != nil { // the pod is gone
			t.Fatal(err)
		}
		s := statusOf(t, cfg).Shards[0]
		if s.Dead.Rows != want || len(s.Dead.Groups) != 2 || !strings.HasPrefix(s.Dead.Path, "s3://state/backfills/signups/checkpoint.dead-letters/") {
			t.Fatalf("run %d: dead letters %+v, want %d from the copy on S3", run, s.Dead, want)
		}
	}
	// With remote state, a second run on this machine is stopped at once
	// by the lock beside the local dead-letter file.
	unlock, err := state.LockFile(local + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if code, _, errs := runCLI(t, "", "run", "--progress", "none", cfg); code != exitLocked {
		t.Fatalf("a second run on this machine: exit %d\n%s", code, errs)
	}
	if s := statusOf(t, cfg).Shards[0]; !strings.Contains(s.RunningBy, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("status with remote state while a run on this machine holds the lock: %+v", s)
	}
}
