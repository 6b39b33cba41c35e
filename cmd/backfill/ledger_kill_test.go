package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/backfillhq/backfill/pipeline/state"
	"github.com/backfillhq/backfill/sinks/message"
)

// TestLedgerKilledRunLeavesReadableParts kills a run with SIGKILL once it
// has written ledger parts: every part it left is a whole Parquet file.
// The resumed run removes the parts written after its checkpoint and
// records the rest: the ledger then holds every row exactly once (though
// the rows past the checkpoint were delivered twice), under the
// messageIds the output holds.
func TestLedgerKilledRunLeavesReadableParts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	const files, rows = 4, 100_000
	copyOrderFiles(t, dir, files, rows)
	out := filepath.Join(dir, "out.ndjson")
	ledger := filepath.Join(dir, "ledger")
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`name: killed
source: {file: {path: %s/*.parquet}}
transforms:
%s
sink: {file: {path: %s, sync_interval: 20ms}}
state: %s/state
ledger: %s
workers: 2
batch_rows: 1000
checkpoint_interval: 30ms
`, dir, ordersMap, out, dir, ledger)), 0o644)

	// Kill it once two parts are out: parts come at each checkpoint, and
	// the whole run takes seconds, so the folder is looked at often.
	killWhen(t, bin, cfg, "two ledger parts are out", func() bool {
		parts, _ := filepath.Glob(filepath.Join(ledger, "killed", "*", "part-*.parquet"))
		return len(parts) >= 2
	})
	first, parts := readLedger(t, ledger) // fails on a part that is not whole
	if len(parts) < 2 || len(first) == 0 || len(first) >= files*rows || distinctRows(first) != len(first) {
		t.Fatalf("after SIGKILL: %d parts, %d rows, %d distinct", len(parts), len(first), distinctRows(first))
	}

	second := exec.Command(bin, "run", "--progress", "none", cfg)
	var stderr2 bytes.Buffer
	second.Stderr = &stderr2
	if err := second.Run(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, stderr2.String())
	}
	all, parts := readLedger(t, ledger)
	outIDs := map[string]bool{}
	for _, m := range messages(t, out) {
		outIDs[m["messageId"].(string)] = true
	}
	for _, r := range all {
		if r.Fate != state.FateDelivered || !outIDs[r.MessageID] || r.MessageID != message.DeriveID("killed", r.Split, r.Row) {
			t.Fatalf("ledger row %+v: not a delivered row of the output", r)
		}
	}
	if len(all) != files*rows || distinctRows(all) != files*rows || len(outIDs) != files*rows {
		t.Fatalf("after the resume: %d ledger rows (%d distinct) in %d parts, %d ids in the output; want %d each (the killed run left %d)",
			len(all), distinctRows(all), len(parts), len(outIDs), files*rows, len(first))
	}
	t.Logf("the killed run left %d rows in the ledger; the resumed one %d parts in all", len(first), len(parts))
}
