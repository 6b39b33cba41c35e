package config

import (
	"fmt"
	"io"
)

// The pipeline file's own fields are documented like a plugin's, from the
// same spec: `backfill plugins pipeline` and the first section of
// PLUGINS.md. The prose on the ledger and syncs lives here, beside the
// fields it explains, rather than in the README.

const pipelineSummary = "the fields of a pipeline file around its source, transforms and sink"

const pipelineDescription = `
**State and the account of rows.** The checkpoint in ` + "`state`" + ` keeps each
split's highest contiguous acknowledged row, and what became of the
acknowledged rows (delivered, filtered, rejected), summed over the runs of
one checkpoint. Every row read ends in exactly one of: delivered, filtered,
rejected (in ` + "`dead_letter`" + `, once, however often a run is retried), or
unacknowledged (the run failed or stopped; a resume reads it again).

**The delivery ledger** (` + "`ledger`" + `). A run writes, row by row, what became
of every row it acknowledged, as Parquet files any reader can query:
LEDGER/NAME/RUNID[-shard-I-of-N]/part-000001.parquet, one part per
checkpoint save (or per 131,072 rows). A part is written whole before the
checkpoint that counts its rows, so a killed run leaves only readable
parts; the resumed run removes any part past its checkpoint and writes the
rows it sends again once. Memory stays at one part's rows (about 70 bytes
each). Filtered rows are not in it. Columns: ` + "`split`" + ` (string),
` + "`row`" + ` (int64, the row's offset in its split), ` + "`message_id`" + ` (string, null;
a sink reject's too), ` + "`fate`" + ` (` + "`delivered`" + ` or ` + "`rejected`" + `), ` + "`stage`" + ` (a reject's:
` + "`source`" + `, ` + "`transform:NAME`" + `, ` + "`sink`" + `), ` + "`status`" + ` (int32, the HTTP status
that acknowledged it), ` + "`acked_at`" + ` (timestamp, ms, UTC). In DuckDB:
` + "`select fate, stage, count(*) from 'ledger/orders/*/part-*.parquet' group by all`" + `.

**Syncs** (` + "`sync`" + `). A run compares each row, after the transforms, with a
snapshot of what the last acknowledged runs sent, by primary key, and
sends added and changed rows only.
- Unchanged rows are filtered, with their own count (the summary's ` + "`sync`" + `
  line, ` + "`sync`" + ` in --report, ` + "`backfill_sync_rows_total{change=...}`" + `).
- A sent row's messageId derives from its key and content: a changed row
  gets a new one (Segment would drop the update as a copy otherwise), and
  the same change sent again by a resumed run keeps its id.
- A key's new version is recorded when its message is acknowledged, never
  before: a killed run resumes and sends again only the rows acknowledged
  since its last checkpoint, under the same messageIds.
- A run that saw every split forgets the keys it did not see (counted as
  removed), and the next run is a new pass over every row. With ` + "`deleted`" + `,
  each removed key gets that message once every split is read, and is
  forgotten when it is acknowledged. A pass with rows rejected before the
  sync step (their keys unknown) does not look for removed keys, and says so.
- A null key is rejected; a key seen twice in a pass is rejected at its
  second row, naming the first. Rows a ` + "`filter`" + ` drops count as not seen.
- --fresh sends everything and rebuilds the snapshot. ` + "`preview`" + ` compares
  without changing it (--all to count removed keys).
- The snapshot is a Pebble database in STATE/NAME/snapshot, its memory
  bounded (a 256 MB block cache, two 16 MB memtables) whatever the table's
  size. With S3 state it is kept in .backfill/NAME/snapshot and copied
  beside the checkpoint (CHECKPOINT.snapshot/) before each save, new table
  files only, and copies older than the last two are deleted; a machine
  whose copy is older fetches it first.
- A sync cannot be sharded (shards take splits by ID, not by key: a key
  moving to another shard's split would be sent as added there and found
  removed here). A new pass starts a new checkpoint, so a source's ` + "`cursor`" + `
  is not carried over: an incremental read would leave most keys unseen.
`

func pipelineDocPlugin() *Plugin {
	return &Plugin{Name: "pipeline", Spec: &Spec{Summary: pipelineSummary, Description: pipelineDescription, root: pipelineSpec()}}
}

// WritePipelineDoc prints the reference of a pipeline file's own fields
// (state, workers, ledger, sync, ...), from the spec the loader uses.
func WritePipelineDoc(w io.Writer) {
	st := textDoc
	st.head = func(w io.Writer, p *Plugin) { fmt.Fprintf(w, "pipeline: %s\n", p.Spec.Summary) }
	writePluginDoc(w, pipelineDocPlugin(), st)
}

// WritePipelineMarkdown prints the same as WritePipelineDoc, as the first
// section of PLUGINS.md.
func WritePipelineMarkdown(w io.Writer) {
	st := markdownDoc
	st.head = func(w io.Writer, p *Plugin) {
		fmt.Fprintf(w, "## Pipeline file\n\nThis section lists %s.\n\n", p.Spec.Summary)
	}
	writePluginDoc(w, pipelineDocPlugin(), st)
}
