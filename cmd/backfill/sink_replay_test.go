package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
)

// replayToReceiver is configs/segment-replay.yaml on the bundled archive
// sample, its file sink swapped for the segment sink posting to a
// receiver (plus sinkExtra under segment:).
func replayToReceiver(t *testing.T, srv *segmenttest.Server, sinkExtra string) string {
	t.Helper()
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "configs", "segment-replay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	i := strings.Index(text, "\nsink:\n")
	if i < 0 {
		t.Fatal("segment-replay.yaml has no sink: block")
	}
	dir := t.TempDir()
	text = text[:i+1] + "sink:\n  segment:\n    endpoint: " + srv.URL() + "\n    write_key: KEY\n" + sinkExtra +
		"state: " + filepath.Join(dir, "state") + "\n"
	cfg := filepath.Join(dir, "replay.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SEGMENT_ARCHIVE", filepath.Join(root, "configs", "sample", "archive.ndjson.gz"))
	return cfg
}

// A replay of Segment's archive keeps each event's origin: the archive's
// context.library (analytics.js 4.1.0), and the rest of its context, reach
// the collector unchanged. Each message carries a fresh sentAt of its own
// (the archived one is stripped), which rudder-server keeps where it drops
// the batch's. library: backfill sets backfill's instead.
func TestSinkReplayKeepsTheArchivesOrigin(t *testing.T) {
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}, KeepBodies: true})
	t.Cleanup(srv.Close)
	start := time.Now()
	code, _, stderr := runCLI(t, "", "run", "--progress", "none", replayToReceiver(t, srv, ""))
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	st := srv.Stats()
	if st.UniqueIDs != 1000 || st.NoMessageSentAt != 0 || st.Dropped != 0 {
		t.Fatalf("receiver: %+v", st)
	}
	for id := range srv.IDs() {
		var m struct {
			SentAt  string
			Context struct {
				IP, UserAgent string
				Library       struct{ Name, Version string }
			}
		}
		body := srv.Body(id)
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		if m.Context.Library.Name != "analytics.js" || m.Context.Library.Version != "4.1.0" || m.Context.IP == "" || m.Context.UserAgent == "" {
			t.Fatalf("the archive's context was not kept: %s", body)
		}
		at, err := time.Parse(time.RFC3339Nano, m.SentAt)
		if err != nil || at.Before(start.Add(-time.Second)) || strings.Count(string(body), `"sentAt"`) != 1 {
			t.Fatalf("sentAt %q is not a fresh one of its own: %s", m.SentAt, body)
		}
	}

	own := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}, KeepBodies: true})
	t.Cleanup(own.Close)
	if code, _, stderr := runCLI(t, "", "run", "--progress", "none", replayToReceiver(t, own, "    library: backfill\n")); code != exitOK {
		t.Fatalf("library: backfill: exit %d\n%s", code, stderr)
	}
	for id := range own.IDs() {
		var m struct {
			Context struct{ Library struct{ Name string } }
		}
		if err := json.Unmarshal(own.Body(id), &m); err != nil || m.Context.Library.Name != "backfill" {
			t.Fatalf("library: backfill: %s", own.Body(id))
		}
	}
}
