package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/pipeline/engine"
	"github.com/backfillhq/backfill/pipeline/state"
)

// usersTable is a users table as a warehouse dump: users u0..u(n-1), of
// which edited ones have a new plan and removed ones are gone, plus added
// new ones after them.
type usersTable struct {
	n, added        int
	edited, removed func(i int) bool
}

func (u usersTable) write(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("user_id,email,plan\n")
	for i := 0; i < u.n+u.added; i++ {
		if i < u.n && u.removed != nil && u.removed(i) {
			continue
		}
		plan := "free"
		if i < u.n && u.edited != nil && u.edited(i) {
			plan = "pro"
		}
		fmt.Fprintf(w, "u%d,u%d@example.com,%s\n", i, i, plan)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// syncPipeline writes a sync pipeline of the users in dir/users.csv to
// endpoint, with extra appended (a deleted: block).
func syncPipeline(t *testing.T, dir, endpoint, extra string) string {
	t.Helper()
	return syncPipelineFrom(t, dir, fmt.Sprintf("{file: {path: %s/users.csv, csv: {header: true}}}", dir), endpoint, extra)
}

// syncPipelineFrom writes a sync pipeline of the users that source (a
// source block) reads to endpoint, with extra appended.
func syncPipelineFrom(t *testing.T, dir, source, endpoint, extra string) string {
	t.Helper()
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`name: users
source: %s
transforms:
  - map: {type: identify, userId: user_id, traits: {email: email, plan: plan}}
sink:
  segment:
    endpoint: %s
    write_key: KEY
    request: {rate_limit: "0", concurrency: 4}
state: %s/state
sync:
  primary_key: [userId]
%s`, source, endpoint, dir, extra)), 0o644)
	return cfg
}

// syncRun runs the pipeline against a new receiver and returns it and the
// run's report.
func syncRun(t *testing.T, dir string, opts segmenttest.Options, extra string, args ...string) (*segmenttest.Server, *engine.Report) {
	t.Helper()
	opts.WriteKeys = []string{"KEY"}
	srv := segmenttest.NewServer(opts)
	t.Cleanup(srv.Close)
	cfg := syncPipeline(t, dir, srv.URL(), extra)
	report := filepath.Join(dir, "report.json")
	code, _, stderr := runCLI(t, "", append(append([]string{"run", "--progress", "none", "--report", report}, args...), cfg)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep engine.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Sync == nil {
		t.Fatalf("no sync in the report: %s", data)
	}
	if r := rep.Rows(); r.Read != r.Delivered+r.Filtered+r.Rejected+r.Unacked {
		t.Fatalf("the account does not add up: %+v", r)
	}
	if v := srv.ViolationList(); len(v) > 0 {
		t.Fatalf("the collector saw violations: %v", v[:min(3, len(v))])
	}
	return srv, &rep
}

// TestSyncSendsOnlyChanges syncs 1M users, then a table with 10,000
// edited, 5,000 added and 2,000 removed: exactly the 15,000 added and
// edited go out, each with a new messageId, and a "User Deleted" for each
// of the 2,000 removed; then nothing.
func TestSyncSendsOnlyChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 1M messages")
	}
	syncChanges(t, 1_000_000, true)
}

// Without sync.deleted, removed keys are forgotten and nothing is sent
// for them.
func TestSyncRemovedSendNothingByDefault(t *testing.T) {
	syncChanges(t, 10_000, false)
}

// With sync.deleted, each removed key gets its message, once.
func TestSyncDeletedMessages(t *testing.T) {
	syncChanges(t, 10_000, true)
}

const deletedBlock = "  deleted: {type: track, event: User Deleted, properties.reason: gone}\n"

// syncChanges syncs users, then 1% of them edited, 0.5% more added and
// 0.2% removed, then the same again.
func syncChanges(t *testing.T, users int, deleted bool) {
	dir := t.TempDir()
	extra, deletes := "", 0
	if deleted {
		extra, deletes = deletedBlock, users/500
	}
	edits, adds := users/100, users/200
	edited := func(i int) bool { return i%100 == 1 }
	removed := func(i int) bool { return i%500 == 3 }
	usersTable{n: users}.write(t, filepath.Join(dir, "users.csv"))

	srv, rep := syncRun(t, dir, segmenttest.Options{SkipValidation: true}, extra)
	if st := srv.Stats(); st.UniqueIDs != int64(users) || st.Messages != int64(users) || rep.Sync.Added != int64(users) || rep.RowsDelivered != int64(users) {
		t.Fatalf("first run: %d messages, %d ids, report %+v; want %d", st.Messages, st.UniqueIDs, rep.Sync, users)
	}
	firstIDs := srv.IDs()

	usersTable{n: users, added: adds, edited: edited, removed: removed}.write(t, filepath.Join(dir, "users.csv"))
	srv, rep = syncRun(t, dir, segmenttest.Options{KeepBodies: true}, extra)
	st := srv.Stats()
	if sent := int64(edits + adds + deletes); st.Messages != sent || st.UniqueIDs != sent {
		t.Fatalf("second run: %d messages, %d ids; want %d each", st.Messages, st.UniqueIDs, sent)
	}
	want := engine.SyncReport{Added: int64(adds), Changed: int64(edits), Unchanged: int64(users - edits - users/500), Removed: int64(users / 500)}
	if got := *rep.Sync; got.Added != want.Added || got.Changed != want.Changed || got.Unchanged != want.Unchanged ||
		got.Removed != want.Removed || !got.PassComplete || rep.RowsFiltered != want.Unchanged {
		t.Fatalf("second run: %+v, %d filtered; want %+v", got, rep.RowsFiltered, want)
	}
	gone := 0
	for id := range srv.IDs() {
		var m struct {
			Type       string            `json:"type"`
			Event      string            `json:"event"`
			UserID     string            `json:"userId"`
			Traits     map[string]string `json:"traits"`
			Properties map[string]string `json:"properties"`
		}
		if err := json.Unmarshal(srv.Body(id), &m); err != nil {
			t.Fatal(err)
		}
		var i int
		fmt.Sscanf(m.UserID, "u%d", &i)
		switch {
		case firstIDs[id] > 0:
			t.Fatalf("%s went out again under its first messageId %s", m.UserID, id)
		case m.Type == "track":
			if !deleted || !removed(i) || m.Event != "User Deleted" || m.Properties["reason"] != "gone" {
				t.Fatalf("sent %s: %s", m.UserID, srv.Body(id))
			}
			gone++
		case i < users && (!edited(i) || removed(i) || m.Traits["plan"] != "pro"):
			t.Fatalf("sent %s %v: not an edit", m.UserID, m.Traits)
		}
	}
	if gone != deletes {
		t.Fatalf("%d removed users' messages; want %d", gone, deletes)
	}

	srv, rep = syncRun(t, dir, segmenttest.Options{}, extra)
	if st := srv.Stats(); st.Messages != 0 || rep.Sync.Unchanged != int64(users+adds-users/500) || rep.Sync.Removed != 0 {
		t.Fatalf("third run: %d messages, %+v; want none", st.Messages, rep.Sync)
	}
}

// A key twice in a run is rejected at its second row, naming both; a
// null key is rejected with its reason; the rest are synced.
func TestSyncRejectsDuplicateAndNullKeys(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "users.csv"), []byte("user_id,email,plan\nu1,a,free\nu2,b,free\n,c,free\nu1,d,pro\n"), 0o644)
	srv, rep := syncRun(t, dir, segmenttest.Options{}, "max_rejects: none\n")
	if st := srv.Stats(); st.Messages != 2 || rep.RowsRejected != 2 || rep.Sync.Added != 2 {
		t.Fatalf("%d messages, %d rejected, %+v; want 2, 2", st.Messages, rep.RowsRejected, rep.Sync)
	}
	dead, err := os.ReadFile(filepath.Join(dir, "state", "users", "dead-letters.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`primary key column \"userId\" is null`,
		`duplicate primary key [\"u1\"]: row 0 of ` + filepath.Join(dir, "users.csv") + ` has it too; that row is synced, row 3 of`,
	} {
		if !strings.Contains(string(dead), want) {
			t.Errorf("dead letters without %s:\n%s", want, dead)
		}
	}
	// The pass had rows without a known key: removed keys are not looked
	// for, and the run says why.
	if !strings.Contains(rep.Sync.RemovedNotChecked, "rejected before the sync step") && rep.Sync.RemovedNotChecked != "" {
		t.Errorf("removed not checked: %q", rep.Sync.RemovedNotChecked)
	}
}

// A primary key named by the source's column, not by its path after the
// transforms, stops the run before anything is sent, with a suggestion.
func TestSyncKeyNotAfterTheTransforms(t *testing.T) {
	dir := t.TempDir()
	usersTable{n: 10}.write(t, filepath.Join(dir, "users.csv"))
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
	defer srv.Close()
	cfg := syncPipeline(t, dir, srv.URL(), "")
	data, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(data), "primary_key: [userId]", "primary_key: [user_id]", 1)), 0o644)
	code, _, stderr := runCLI(t, "", "run", "--progress", "none", cfg)
	want := `sync.primary_key: column "user_id" is not in the rows after the transforms (did you mean "userId"?)`
	if code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("exit %d; want 1 and %s in:\n%s", code, want, stderr)
	}
	if n := srv.Stats().Messages; n != 0 {
		t.Fatalf("%d messages sent", n)
	}
}

// --fresh sends every row again and rebuilds the snapshot.
func TestSyncFreshResendsEverything(t *testing.T) {
	dir := t.TempDir()
	usersTable{n: 100}.write(t, filepath.Join(dir, "users.csv"))
	syncRun(t, dir, segmenttest.Options{}, "")
	srv, rep := syncRun(t, dir, segmenttest.Options{}, "", "--fresh")
	if st := srv.Stats(); st.Messages != 100 || rep.Sync.Added != 100 {
		t.Fatalf("--fresh: %d messages, %+v; want 100 added", st.Messages, rep.Sync)
	}
	srv, _ = syncRun(t, dir, segmenttest.Options{}, "")
	if st := srv.Stats(); st.Messages != 0 {
		t.Fatalf("after --fresh: %d messages; want 0", st.Messages)
	}
}

// TestSyncKilledRunResendsOnlyUnacknowledged kills (SIGKILL) a second
// sync run part way: the collector has answered its first requests and
// holds the rest, and a checkpoint counts some of the changes. The resumed
// run sends the changes not acknowledged: every change arrives, each
// under one messageId (one id per user), and the run after sends nothing.
func TestSyncKilledRunResendsOnlyUnacknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const users, changes = 200_000, 20_000
	dir := t.TempDir()
	held := killedSecondSync(t, dir, users, func(i int) bool { return i%10 == 7 }, "checkpoint_interval: 30ms\nbatch_rows: 1000\n")
	cpPath := filepath.Join(dir, "state", "users", "checkpoint.json")
	first := held.Stats().Messages
	if first == 0 || first >= changes {
		t.Fatalf("the killed run delivered %d changes; want some, not all", first)
	}

	srv, rep := syncRun(t, dir, segmenttest.Options{KeepBodies: true}, "checkpoint_interval: 30ms\nbatch_rows: 1000\n")
	if !rep.Resumed || rep.Sync.Changed >= changes {
		t.Fatalf("the resumed run: resumed %v, %+v; want a resume sending fewer than %d", rep.Resumed, rep.Sync, changes)
	}
	idOf := messageIDsByUser(t, held, srv)
	if len(idOf) != changes {
		t.Fatalf("%d users changed arrived (%d in the killed run, %d after); want %d", len(idOf), first, srv.Stats().Messages, changes)
	}
	// The pass's account counts each row once, though the resumed run
	// read again the rows past the killed run's checkpoint.
	var cp state.Checkpoint
	if data, err := os.ReadFile(cpPath); err != nil || json.Unmarshal(data, &cp) != nil || cp.Sync == nil {
		t.Fatalf("no sync pass in the checkpoint: %v", err)
	}
	if p := cp.Sync; !p.Complete || p.Added != 0 || p.Changed != changes || p.Unchanged != users-changes {
		t.Fatalf("the pass counts %+v; want %d changed, %d unchanged", p, changes, users-changes)
	}
	srv, _ = syncRun(t, dir, segmenttest.Options{}, "")
	if n := srv.Stats().Messages; n != 0 {
		t.Fatalf("after the resume: %d messages; want 0", n)
	}
	t.Logf("the killed run delivered %d changes, the resumed one %d", first, rep.RowsDelivered)
}

// killedSecondSync syncs a users table in dir, edits the users edited
// picks, and SIGKILLs the second run (the binary's, with extra) part way,
// once a checkpoint counts delivered rows. It returns the collector that
// run sent to, holding its later requests.
func killedSecondSync(t *testing.T, dir string, users int, edited func(int) bool, extra string) *segmenttest.Server {
	t.Helper()
	bin, held, cfg := secondSync(t, dir, usersTable{n: users}, usersTable{n: users, edited: edited}, "", extra, 3)
	// Once the collector holds a request, the checkpoint is this run's
	// (the first run's counted rows too); the answered requests' rows,
	// acknowledged, are saved at the next tick.
	cpPath := filepath.Join(dir, "state", "users", "checkpoint.json")
	killWhen(t, bin, cfg, "a checkpoint counts delivered rows", func() bool {
		var cp state.Checkpoint
		if held.Stats().Held == 0 {
			return false
		}
		data, err := os.ReadFile(cpPath)
		return err == nil && json.Unmarshal(data, &cp) == nil && cp.Rows.Delivered > 0
	})
	return held
}

// secondSync syncs the users table first in dir (with firstExtra), then
// writes second in its place and returns the binary, a collector holding
// requests after its first holdAfter, and the second run's pipeline (with
// extra), for a test to run and kill.
func secondSync(t *testing.T, dir string, first, second usersTable, firstExtra, extra string, holdAfter int) (string, *segmenttest.Server, string) {
	t.Helper()
	bin := buildBinary(t)
	first.write(t, filepath.Join(dir, "users.csv"))
	syncRun(t, dir, segmenttest.Options{SkipValidation: true}, firstExtra)
	second.write(t, filepath.Join(dir, "users.csv"))
	held := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}, KeepBodies: true, HoldAfter: holdAfter})
	t.Cleanup(held.Close)
	return bin, held, syncPipeline(t, dir, held.URL(), extra)
}

// messageIDsByUser maps each user the collectors received to its
// messageId, and fails the test if a user went out under two.
func messageIDsByUser(t *testing.T, collectors ...*segmenttest.Server) map[string]string {
	t.Helper()
	idOf := map[string]string{}
	for _, c := range collectors {
		for id := range c.IDs() {
			var m struct {
				UserID string `json:"userId"`
			}
			if err := json.Unmarshal(c.Body(id), &m); err != nil {
				t.Fatal(err)
			}
			if prev, ok := idOf[m.UserID]; ok && prev != id {
				t.Fatalf("%s went out under two messageIds: %s and %s", m.UserID, prev, id)
			}
			idOf[m.UserID] = id
		}
	}
	return idOf
}

// A killed sync whose input then changes (a user deleted at the top, so
// every row moves up) reads the file again from its start on resume: the
// keys the killed run saw are no duplicates at their new rows, and every
// change arrives once.
func TestSyncKilledThenInputChanged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const users, changes = 40_000, 10_000
	dir := t.TempDir()
	edited := func(i int) bool { return i%4 == 1 }
	extra := "checkpoint_interval: 30ms\nbatch_rows: 500\n"
	held := killedSecondSync(t, dir, users, edited, extra)
	first := held.Stats().Messages

	usersTable{n: users, edited: edited, removed: func(i int) bool { return i == 0 }}.write(t, filepath.Join(dir, "users.csv"))
	srv, rep := syncRun(t, dir, segmenttest.Options{KeepBodies: true}, extra)
	if len(rep.SplitsChanged) != 1 || rep.RowsRejected != 0 {
		t.Fatalf("the resumed run: %d splits changed, %d rows rejected; want 1, 0\n%+v", len(rep.SplitsChanged), rep.RowsRejected, rep)
	}
	idOf := messageIDsByUser(t, held, srv)
	if len(idOf) != changes || rep.Sync.Removed != 1 {
		t.Fatalf("%d changed users arrived (%d in the killed run), %d removed; want %d, 1", len(idOf), first, rep.Sync.Removed, changes)
	}
}

// A sync run killed after some changes were acknowledged and before any
// checkpoint counted them: the snapshot holds their new versions, and the
// resumed run reads their rows again. It sends them again under the same
// messageIds and counts them as changed, so the pass's account is a never
// killed run's.
func TestSyncKilledBeforeItsCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const users, changes = 40_000, 10_000
	dir := t.TempDir()
	// No periodic save: the checkpoint is the one the run saves as it
	// starts, counting nothing.
	extra := "checkpoint_interval: 1h\nbatch_rows: 500\n"
	bin, held, cfg := secondSync(t, dir, usersTable{n: users}, usersTable{n: users, edited: func(i int) bool { return i%4 == 1 }}, "", extra, 1)
	addr := freeAddr(t)
	killWhen(t, bin, cfg, "it delivered a row", func() bool { return scrapeMetric(addr, "backfill_rows_delivered_total") > 0 },
		"--metrics-addr", addr)
	var cp state.Checkpoint
	cpPath := filepath.Join(dir, "state", "users", "checkpoint.json")
	if data, err := os.ReadFile(cpPath); err != nil || json.Unmarshal(data, &cp) != nil || cp.Rows.Delivered != 0 {
		t.Fatalf("the killed run's checkpoint counts %+v (%v); want no row", cp.Rows, err)
	}

	srv, rep := syncRun(t, dir, segmenttest.Options{KeepBodies: true}, extra)
	if !rep.Resumed || rep.Sync.Changed != changes || rep.Sync.Unchanged != users-changes {
		t.Fatalf("the resumed run: resumed %v, %+v; want %d changed, %d unchanged", rep.Resumed, rep.Sync, changes, users-changes)
	}
	if idOf := messageIDsByUser(t, held, srv); len(idOf) != changes {
		t.Fatalf("%d changed users arrived; want %d", len(idOf), changes)
	}
	if data, err := os.ReadFile(cpPath); err != nil || json.Unmarshal(data, &cp) != nil || cp.Sync == nil {
		t.Fatalf("no sync pass in the checkpoint: %v", err)
	}
	if p := cp.Sync; !p.Complete || p.Changed != changes || p.Unchanged != users-changes {
		t.Fatalf("the pass counts %+v; want %d changed, %d unchanged", p, changes, users-changes)
	}
	srv, _ = syncRun(t, dir, segmenttest.Options{}, "")
	if n := srv.Stats().Messages; n != 0 {
		t.Fatalf("after the resume: %d messages; want 0", n)
	}
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrapeMetric reads one metric (its first series) from a run's
// /metrics; 0 when it cannot (the server is not up yet).
func scrapeMetric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return f
		}
	}
	return 0
}

// With the state on S3, the snapshot is copied beside the checkpoint: a
// run on another machine (another working directory) sends only the
// changes, and a machine whose local snapshot is stale fetches the copy.
func TestSyncSnapshotOnS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "acme")
	srv.SetCredentialsEnv(t)
	dir, machineA, machineB := t.TempDir(), t.TempDir(), t.TempDir()
	state := "s3://acme/state?endpoint=" + srv.Endpoint + "&path_style=true&region=" + s3test.Region
	run := func(machine string, wantSent int64) {
		t.Helper()
		col := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
		defer col.Close()
		cfg := syncPipeline(t, dir, col.URL(), "")
		data, _ := os.ReadFile(cfg)
		os.WriteFile(cfg, []byte(strings.Replace(string(data), "state: "+dir+"/state", "state: "+state, 1)), 0o644)
		code, _, stderr := runCLI(t, machine, "run", "--progress", "none", cfg)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if n := col.Stats().Messages; n != wantSent {
			t.Fatalf("run in %s sent %d; want %d\n%s", filepath.Base(machine), n, wantSent, stderr)
		}
	}
	usersTable{n: 1000}.write(t, filepath.Join(dir, "users.csv"))
	run(machineA, 1000)
	usersTable{n: 1000, edited: func(i int) bool { return i%100 == 0 }}.write(t, filepath.Join(dir, "users.csv"))
	run(machineB, 10)
	run(machineA, 0) // its own snapshot is older than the copy: it fetches the copy
	assertOlderCopiesPruned(t, srv, "state/users/checkpoint")
	run(t.TempDir(), 0) // a new machine: what the pruning kept is a whole copy
}

// assertOlderCopiesPruned checks that the objects of the sync snapshot's
// copy beside checkpoint (a key without .json) are those of the copy the
// checkpoint lists, and of at most one generation before it: each save
// writes a copy, and older ones are deleted.
func assertOlderCopiesPruned(t *testing.T, srv *s3test.Server, checkpoint string) {
	t.Helper()
	ctx := context.Background()
	obj, err := srv.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("acme"), Key: aws.String(checkpoint + ".json")})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Body.Close()
	var cp state.Checkpoint
	if err := json.NewDecoder(obj.Body).Decode(&cp); err != nil {
		t.Fatal(err)
	}
	if cp.Sync == nil || cp.Sync.Copy == nil {
		t.Fatalf("the checkpoint lists no snapshot copy: %+v", cp.Sync)
	}
	current := map[string]bool{}
	for _, f := range cp.Sync.Copy.Files {
		current[f] = true
	}
	prefix := checkpoint + ".snapshot/"
	out, err := srv.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("acme"), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	have, older := map[string]bool{}, map[string]bool{}
	for _, o := range out.Contents {
		name := strings.TrimPrefix(aws.ToString(o.Key), prefix)
		have[name] = true
		if gen, _, ok := strings.Cut(name, "/"); ok && !current[name] {
			older[gen] = true
		}
	}
	for f := range current {
		if !have[f] {
			t.Errorf("%s%s, listed by the checkpoint, is not on S3", prefix, f)
		}
	}
	if len(older) > 1 {
		t.Errorf("the copies of %d generations before the checkpoint's (gen %d) are still on S3: %v", len(older), cp.Sync.Copy.Gen, older)
	}
}

// preview shows what a sync would send before anything is sent; status
// what the last pass found.
func TestSyncPreviewAndStatusCounts(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "users.csv")
	os.WriteFile(csv, []byte("user_id,email,plan\nu1,a,free\nu2,b,free\nu3,c,free\n"), 0o644)
	syncRun(t, dir, segmenttest.Options{}, "")
	os.WriteFile(csv, []byte("user_id,email,plan\nu1,a,pro\nu3,c,free\nu4,d,free\n"), 0o644)
	cfg := filepath.Join(dir, "p.yaml")
	code, stdout, stderr := runCLI(t, "", "preview", "--all", cfg)
	want := "read 3 rows: 2 would be sent, 0 rejected, 1 filtered; against the sync snapshot: 1 added, 1 changed, 1 unchanged, 1 removed"
	if code != 0 || !strings.Contains(stdout, want) {
		t.Fatalf("preview: exit %d, want %q in\n%s\n%s", code, want, stdout, stderr)
	}
	srv, rep := syncRun(t, dir, segmenttest.Options{}, "")
	if n := srv.Stats().Messages; n != 2 || rep.Sync.Removed != 1 {
		t.Fatalf("the run after the preview sent %d, %+v; want what the preview said", n, rep.Sync)
	}
	code, stdout, _ = runCLI(t, "", "status", cfg)
	if want := "sync          1 added, 1 changed, 1 unchanged, 1 removed; the pass is complete"; code != 0 || !strings.Contains(stdout, want) {
		t.Fatalf("status: exit %d, want %q in\n%s", code, want, stdout)
	}
}

// A run killed (SIGKILL) while it sends the removed keys' messages: the
// resumed run sends those not acknowledged, so each removed user's
// message arrives under one messageId, and the run after sends nothing.
func TestSyncKilledWhileSendingDeletes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const users, removedN = 100_000, 10_000
	dir := t.TempDir()
	bin, held, cfg := secondSync(t, dir, usersTable{n: users}, usersTable{n: users, removed: func(i int) bool { return i%10 == 7 }},
		deletedBlock, deletedBlock+"checkpoint_interval: 30ms\n", 2)
	cmd, stderr, exited := startRun(t, bin, cfg)
	select {
	case <-held.Held(1):
	case err := <-exited:
		t.Fatalf("the run ended (%v) before the collector held a request\n%s", err, stderr.String())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	first := held.Stats().Messages
	if first >= removedN {
		t.Fatalf("the killed run delivered %d deletes; want fewer than %d", first, removedN)
	}

	srv, rep := syncRun(t, dir, segmenttest.Options{KeepBodies: true}, deletedBlock)
	idOf := map[string]string{}
	for _, s := range []*segmenttest.Server{held, srv} {
		for id := range s.IDs() {
			var m struct {
				Event  string `json:"event"`
				UserID string `json:"userId"`
			}
			if err := json.Unmarshal(s.Body(id), &m); err != nil {
				t.Fatal(err)
			}
			if prev, ok := idOf[m.UserID]; m.Event != "User Deleted" || ok && prev != id {
				t.Fatalf("%s: %s (first id %s)", m.UserID, s.Body(id), prev)
			}
			idOf[m.UserID] = id
		}
	}
	if len(idOf) != removedN || !rep.Sync.PassComplete {
		t.Fatalf("%d removed users' messages arrived (%d in the killed run, %d after), pass complete %v; want %d",
			len(idOf), first, srv.Stats().Messages, rep.Sync.PassComplete, removedN)
	}
	resumed := srv.Stats().Messages
	srv, _ = syncRun(t, dir, segmenttest.Options{}, deletedBlock)
	if n := srv.Stats().Messages; n != 0 {
		t.Fatalf("after the resume: %d messages; want 0", n)
	}
	t.Logf("the killed run delivered %d deletes, the resumed one %d", first, resumed)
}

// A sync cannot be sharded: a key could move to a split of another shard.
// The run is refused before it sends anything, saying why.
func TestSyncRefusesShards(t *testing.T) {
	dir := t.TempDir()
	usersTable{n: 10}.write(t, filepath.Join(dir, "users.csv"))
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
	defer srv.Close()
	cfg := syncPipeline(t, dir, srv.URL(), "")
	code, _, stderr := runCLI(t, "", "run", "--progress", "none", "--shard", "0/2", cfg)
	if code != 1 || !strings.Contains(stderr, "a sync pipeline cannot run sharded") || srv.Stats().Messages != 0 {
		t.Fatalf("exit %d, %d sent\n%s", code, srv.Stats().Messages, stderr)
	}
}
