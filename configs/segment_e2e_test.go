package configs_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
)

const writeKey = "wk-test"

// faultyReceiver is a Segment receiver failing 10% of requests with 500
// and 10% with 429.
func faultyReceiver(t *testing.T, keep bool) *segmenttest.Server {
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{writeKey}, Seed: 7,
		Fail500: 0.1, Fail429: 0.1, RetryAfter: "0", KeepBodies: keep})
	t.Cleanup(srv.Close)
	return srv
}

func segmentEnv(srv *segmenttest.Server, dir string) map[string]string {
	return map[string]string{"SEGMENT_ENDPOINT": srv.URL(), "SEGMENT_WRITE_KEY": writeKey,
		"SEGMENT_RATE_LIMIT": "0", "BACKFILL_OUT": dir, "BACKFILL_STATE": filepath.Join(dir, "state")}
}

func checkClean(t *testing.T, srv *segmenttest.Server) segmenttest.Stats {
	t.Helper()
	st := srv.Stats()
	if st.Violations != 0 || st.Dropped != 0 || st.BadSentAt != 0 {
		t.Fatalf("receiver saw %d limit violations, %d messages Segment would drop, %d bad sentAt: %v %v",
			st.Violations, st.Dropped, st.BadSentAt, srv.ViolationList(), st.DroppedReasons)
	}
	return st
}

func writeOrders(t *testing.T, path string, rows int, seed int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := sampledata.WriteOrdersParquetRowGroups(f, rows, seed, 2000); err != nil {
		t.Fatal(err)
	}
}

// TestSegmentOrdersConfigKilledResumedAndFresh sends a Parquet dump to a
// faulty receiver, stops the run part way (SIGTERM), resumes it, then
// reruns it with --fresh: every row arrives, duplicates are only identical
// messageIds, and --fresh resends exactly the same ids.
func TestSegmentOrdersConfigKilledResumedAndFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 60k rows three times")
	}
	srv := faultyReceiver(t, false)
	dir := t.TempDir()
	const rows = 60_000
	env := segmentEnv(srv, dir)
	env["ORDERS"] = filepath.Join(dir, "orders.parquet")
	writeOrders(t, env["ORDERS"], rows, 3)

	cmd := cliCommand(dir, env, "run", "--progress", "none", configPath("segment-orders.yaml"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A fifth of the rows stored (no duplicates yet: faults store nothing),
	// the receiver signals, and the run is stopped then.
	fifth := srv.Stored(rows / 5)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-fifth:
	case err := <-exited:
		t.Fatalf("the run ended (%v) before a fifth of the rows arrived:\n%s", err, out.String())
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("too slow: a fifth of the rows did not arrive in 2 minutes:\n%s", out.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := <-exited
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("stopped run: %v, want exit 130\n%s", err, out.String())
	}
	first := srv.Stats().UniqueIDs
	if first >= rows {
		t.Fatalf("the stop came after every row was sent (%d)", first)
	}

	mustRun(t, dir, env, "run", "--progress", "none", configPath("segment-orders.yaml"))
	st := checkClean(t, srv)
	if st.UniqueIDs != rows {
		t.Fatalf("after resume: %d distinct messages, want %d (first run: %d)", st.UniqueIDs, rows, first)
	}
	if st.ByStatus[500] == 0 || st.ByStatus[429] == 0 {
		t.Fatalf("no faults were injected: %v", st.ByStatus)
	}
	// A graceful stop delivers the batches already read and saves them, so
	// the resumed run resends nothing.
	if st.Duplicates != 0 {
		t.Fatalf("%d messages resent after a graceful stop at %d", st.Duplicates, first)
	}
	t.Logf("stopped at %d, resumed without resending; statuses %v", first, st.ByStatus)

	before := srv.IDs()
	mustRun(t, dir, env, "run", "--fresh", "--progress", "none", configPath("segment-orders.yaml"))
	after := srv.IDs()
	if len(after) != rows {
		t.Fatalf("--fresh sent new message ids: %d distinct, want %d", len(after), rows)
	}
	for id, n := range after {
		if n <= before[id] {
			t.Fatalf("--fresh did not resend %s", id)
		}
	}
	checkClean(t, srv)
}

func TestS3ParquetConfigEndToEnd(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "acme-exports")
	dir := t.TempDir()
	const files, rows = 5, 3000
	for i := 0; i < files; i++ {
		p := filepath.Join(dir, fmt.Sprintf("%d.parquet", i))
		writeOrders(t, p, rows, int64(100+i))
		s3.PutFile(t, "acme-exports", fmt.Sprintf("orders/2024/%02d/part-%d.parquet", i+1, i), p)
	}
	s3.Put(t, "acme-exports", "orders/README.txt", []byte("not data"))
	s3.Put(t, "acme-exports", "other/ignored.parquet", []byte("not read"))

	srv := faultyReceiver(t, false)
	env := segmentEnv(srv, dir)
	for k, v := range map[string]string{"S3_BUCKET": "acme-exports", "S3_PREFIX": "orders/", "S3_ENDPOINT": s3.Endpoint,
		"S3_PATH_STYLE": "true", "AWS_REGION": s3test.Region, "AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey} {
		env[k] = v
	}
	out := mustRun(t, dir, env, "run", "--progress", "none", configPath("s3-parquet.yaml"))
	st := checkClean(t, srv)
	if st.UniqueIDs != files*rows {
		t.Fatalf("%d distinct messages, want %d\n%s", st.UniqueIDs, files*rows, out)
	}
	if st.Duplicates != 0 {
		t.Errorf("%d duplicates without any stop", st.Duplicates)
	}
	// A rerun finds every object done.
	out = mustRun(t, dir, env, "run", "--progress", "none", configPath("s3-parquet.yaml"))
	if !strings.Contains(out, "nothing to do") || srv.Stats().UniqueIDs != files*rows {
		t.Fatalf("rerun:\n%s", out)
	}
}

// archiveLines makes Segment S3-archive lines for one received day.
func archiveLines(t *testing.T, day time.Time, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for i := 0; i < n; i++ {
		ts := day.Add(-time.Duration(i+1) * time.Minute)
		m := map[string]any{
			"type": "track", "event": "Song Played", "userId": fmt.Sprintf("u%d", i%9),
			"messageId": fmt.Sprintf("orig-%s-%d", day.Format("010215"), i), "timestamp": ts.Format(time.RFC3339Nano),
			"originalTimestamp": ts.Format(time.RFC3339Nano), "sentAt": day.Format(time.RFC3339), "receivedAt": day.Format(time.RFC3339),
			"projectId": "proj1", "writeKey": "old-key", "channel": "server", "version": 2,
			"_metadata":  map[string]any{"bundled": []string{"Amplitude"}},
			"properties": map[string]any{"song": fmt.Sprintf("s%d", i), "seconds": i},
			"context":    map[string]any{"library": map[string]any{"name": "analytics.js"}, "ip": "1.2.3.4"},
		}
		line, _ := json.Marshal(m)
		zw.Write(append(line, '\n'))
	}
	zw.Close()
	return buf.Bytes()
}

func TestS3SegmentArchiveConfigEndToEnd(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "acme-segment-logs")
	const perFile = 150
	first := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for d := 0; d < 5; d++ {
		day := first.AddDate(0, 0, d)
		for part := 0; part < 2; part++ {
			key := fmt.Sprintf("segment-logs/src1/%d/%d-part%d.gz", day.UnixMilli(), day.Unix(), part)
			s3.Put(t, "acme-segment-logs", key, archiveLines(t, day.Add(time.Duration(part)*time.Hour), perFile))
		}
	}
	srv := faultyReceiver(t, true)
	dir := t.TempDir()
	env := segmentEnv(srv, dir)
	for k, v := range map[string]string{"ARCHIVE_BUCKET": "acme-segment-logs", "ARCHIVE_FROM": "2024-01-02", "ARCHIVE_TO": "2024-01-04",
		"S3_ENDPOINT": s3.Endpoint, "S3_PATH_STYLE": "true", "AWS_REGION": s3test.Region,
		"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey} {
		env[k] = v
	}
	started := time.Now().Add(-time.Second)
	out := mustRun(t, dir, env, "run", "--progress", "none", configPath("s3-segment-archive.yaml"))
	st := checkClean(t, srv)
	if want := int64(3 * 2 * perFile); st.UniqueIDs != want {
		t.Fatalf("%d messages, want %d (days 2-4 only)\n%s", st.UniqueIDs, want, out)
	}
	for id := range srv.IDs() {
		var m map[string]any
		if err := json.Unmarshal(srv.Body(id), &m); err != nil {
			t.Fatal(err)
		}
		for _, gone := range []string{"receivedAt", "originalTimestamp", "projectId", "writeKey", "channel", "version", "_metadata"} {
			if _, ok := m[gone]; ok {
				t.Fatalf("%s not stripped: %v", gone, m)
			}
		}
		// The archived sentAt is stripped; the sink stamps a fresh one.
		if sent, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["sentAt"])); err != nil || sent.Before(started) {
			t.Fatalf("sentAt %v is not the time of sending", m["sentAt"])
		}
		if strings.HasPrefix(id, "orig-") {
			t.Fatalf("original messageId resent: %s", id)
		}
		ts, _ := time.Parse(time.RFC3339Nano, m["timestamp"].(string))
		if ts.Before(first) || ts.After(first.AddDate(0, 0, 4)) {
			t.Fatalf("timestamp %v not the archived one", m["timestamp"])
		}
		if at(m, "integrations", "All") != false || at(m, "integrations", "Amplitude") != true || at(m, "integrations", "Warehouses", "all") != false {
			t.Fatalf("integrations %v", m["integrations"])
		}
		if at(m, "context", "library", "name") != "analytics.js" || at(m, "properties", "song") == nil {
			t.Fatalf("message %v", m)
		}
	}
}

// TestSegmentRedriveConfig: a collector rejects some messages (400), the
// sink sets them aside with the message, the cause is fixed, and
// segment-redrive.yaml resends exactly those, with their original ids.
func TestSegmentRedriveConfig(t *testing.T) {
	var fixed atomic.Bool
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{writeKey}, KeepBodies: true,
		Reject: func(m segmenttest.Message) string {
			if !fixed.Load() && strings.HasPrefix(m.MessageID, "00") {
				return "tracking plan: event not allowed"
			}
			return ""
		}})
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	const rows = 20_000
	env := segmentEnv(srv, dir)
	env["ORDERS"] = filepath.Join(dir, "orders.parquet")
	writeOrders(t, env["ORDERS"], rows, 5)
	mustRun(t, dir, env, "run", "--progress", "none", configPath("segment-orders.yaml"))
	rejected := readNDJSON(t, filepath.Join(dir, "state", "segment-orders", "dead-letters.ndjson"))
	if len(rejected) == 0 || srv.Stats().UniqueIDs+int64(len(rejected)) != rows {
		t.Fatalf("%d delivered + %d dead letters, want %d rows", srv.Stats().UniqueIDs, len(rejected), rows)
	}
	fixed.Store(true)
	env["DEAD_LETTERS"] = filepath.Join(dir, "state", "segment-orders", "dead-letters.ndjson")
	mustRun(t, dir, env, "run", "--progress", "none", configPath("segment-redrive.yaml"))
	st := checkClean(t, srv)
	if st.UniqueIDs != rows || st.Duplicates != 0 {
		t.Fatalf("after the redrive: %d distinct messages (%d resent), want %d", st.UniqueIDs, st.Duplicates, rows)
	}
	for _, dl := range rejected {
		msg := dl["message"].(map[string]any)
		var got map[string]any
		body := srv.Body(msg["messageId"].(string))
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(body, []byte(`"library"`)); n != 1 {
			t.Fatalf("redriven message has %d library keys: %s", n, body)
		}
		for _, k := range []string{"type", "event", "userId", "timestamp", "properties", "context"} {
			if fmt.Sprint(got[k]) != fmt.Sprint(msg[k]) {
				t.Fatalf("redriven %s: %v, dead letter had %v", k, got[k], msg[k])
			}
		}
	}
}
