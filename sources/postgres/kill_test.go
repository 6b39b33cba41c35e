package postgres

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
)

// buildCLI builds the backfill binary for tests that kill a real process.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "backfill")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/backfill")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestKilledRunResumesInsideSplits runs the shipped postgres-events
// pipeline with the CLI to a Segment receiver, kills it (SIGKILL: no
// chance to save) once a quarter of the events arrived, and runs it
// again: every event arrives, each messageId once (a SIGKILL resends the
// rows delivered after the last checkpoint, with the same ids), and the
// resumed splits start after their last acknowledged key instead of
// reading the delivered rows again.
func TestKilledRunResumesInsideSplits(t *testing.T) {
	t.Parallel()
	const rows = 100_000
	d := newDB(t)
	d.exec(t, `CREATE TABLE events (id bigint PRIMARY KEY, user_id text, anonymous_id text, event text,
		properties jsonb, created_at timestamptz NOT NULL)`,
		fmt.Sprintf(`INSERT INTO events SELECT g, 'u' || (g %% 997), NULL, 'Order ' || (g %% 7),
		jsonb_build_object('n', g, 'total', g * 1.5, 'tags', jsonb_build_array('a', 'b')),
		timestamptz '2024-01-01' + g * interval '1 second' FROM generate_series(1, %d) g`, rows), `ANALYZE events`)
	bin := buildCLI(t)
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"wk"}})
	defer srv.Close()
	dir := t.TempDir()
	shipped, err := os.ReadFile("../../configs/postgres-events.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, append(shipped, []byte("checkpoint_interval: 100ms\nbatch_rows: 1000\nworkers: 4\n")...), 0o644)
	env := append(os.Environ(), "PG_URL="+d.url(), "PG_MAX_SPLITS=4", "SEGMENT_ENDPOINT="+srv.URL(),
		"SEGMENT_WRITE_KEY=wk", "SEGMENT_RATE_LIMIT=0", "BACKFILL_OUT="+dir)

	cmd := exec.Command(bin, "run", "--progress", "none", cfg)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	quarter := srv.Stored(rows / 4)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-quarter:
	case err := <-exited:
		t.Fatalf("the run ended (%v) before a quarter of the events arrived:\n%s", err, out.String())
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("a quarter of the events did not arrive in 2 minutes:\n%s", out.String())
	}
	cmd.Process.Kill()
	<-exited
	first := srv.Stats().UniqueIDs
	if first >= rows {
		t.Fatalf("killed after every event arrived (%d)", first)
	}

	second := exec.Command(bin, "run", "--progress", "none", "--log-level", "debug", cfg)
	second.Env = env
	var out2 bytes.Buffer
	second.Stdout, second.Stderr = &out2, &out2
	if err := second.Run(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out2.String())
	}
	st := srv.Stats()
	if st.UniqueIDs != rows || st.Violations != 0 || st.Dropped != 0 {
		t.Fatalf("after resume: %d distinct messageIds (want %d), %d violations, %d dropped; first run %d\n%s",
			st.UniqueIDs, rows, st.Violations, st.Dropped, first, out2.String())
	}
	// Resent: only what the SIGKILL cut between two checkpoints.
	t.Logf("killed at %d events; resumed; %d resent with the same messageId", first, st.Duplicates)
	if st.Duplicates > rows/2 {
		t.Errorf("%d events resent: the resume did not start where the first run was", st.Duplicates)
	}
	stmts := regexp.MustCompile(`msg="postgres: split statement" split=\S+ offset=(\d+) sql="([^"\\]|\\.)*"`).FindAllString(out2.String(), -1)
	resumedInside := 0
	for _, s := range stmts {
		if strings.Contains(s, "offset=0 ") {
			continue
		}
		resumedInside++
		if !strings.Contains(s, `\"id\" > `) || strings.Contains(s, "OFFSET") {
			t.Errorf("a split resumed without starting after its key: %s", s)
		}
	}
	if resumedInside == 0 {
		t.Errorf("no split was resumed inside (statements: %q)", stmts)
	}
}
