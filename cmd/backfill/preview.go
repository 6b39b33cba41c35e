package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
	"github.com/backfillhq/backfill/pipeline/state"
	"github.com/backfillhq/backfill/sinks/message"
)

func newPreviewCmd(stdout, stderr io.Writer) *cobra.Command {
	var rows int64
	var show int
	cmd := &cobra.Command{
		Use:   "preview PIPELINE.yaml",
		Short: "Read and transform some rows and print the messages; send nothing",
		Long: `Read up to --rows rows through the source and transforms, encode them exactly
as the sink would, print the first --show messages and every rejected row's
reason, and count what would be sent. No state is written, nothing is sent.`,
		Args: usage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfigOffline(args[0])
			if err != nil {
				return err
			}
			cfg.Workers = 1
			if int64(cfg.BatchRows) > rows {
				cfg.BatchRows = int(rows)
			}
			ps := &previewSink{w: stdout, show: show,
				enc: message.NewEncoder(message.Options{Pipeline: cfg.Name, Library: "backfill", Version: version})}
			var rejMu sync.Mutex
			var rejects int
			// A run that keeps nothing: no checkpoint, no dead letters.
			opts := engine.Options{Version: version, Fresh: true, Limit: rows, Sink: ps,
				Store: state.Discard{}, DeadLetters: state.DiscardDeadLetters{},
				OnReject: func(split string, r pipeline.Reject) {
					rejMu.Lock()
					defer rejMu.Unlock()
					rejects++
					if rejects <= show {
						col := ""
						if r.Column != "" {
							col = fmt.Sprintf(" column %q", r.Column)
						}
						fmt.Fprintf(stdout, "# rejected: %s row %d%s (%s): %s\n", split, r.Row, col, r.Stage, r.Reason)
					}
				}}
			rep, err := engine.New(cfg, opts).Run(context.Background())
			if len(config.AsConfigErrors(err)) > 0 {
				return configExit(err)
			}
			fmt.Fprintf(stdout, "# preview of %s: read %d rows: %d would be sent, %d rejected, %d filtered\n",
				cfg.Name, rep.RowsRead, rep.RowsDelivered, rep.RowsRejected, rep.RowsFiltered)
			if err != nil {
				return &exitError{exitFailed, err}
			}
			return nil
		},
	}
	cmd.Flags().Int64Var(&rows, "rows", 1000, "rows to read")
	cmd.Flags().IntVar(&show, "show", 5, "messages (and rejects) to print")
	return cmd
}

// previewSink encodes like the real sinks and prints the first messages;
// the rows the encoder rejects go to the run's reject hook, as a real
// sink's dead letters would.
type previewSink struct {
	mu    sync.Mutex
	w     io.Writer
	show  int
	shown int
	enc   *message.Encoder
}

func (p *previewSink) Open(context.Context) error { return nil }

func (p *previewSink) Write(ctx context.Context, b *pipeline.Batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer b.Release()
	rejects, err := p.enc.Encode(b, func(row int, msg []byte) error {
		if p.shown < p.show {
			p.shown++
			var v any
			if json.Unmarshal(msg, &v) == nil {
				out, _ := json.MarshalIndent(v, "", "  ")
				fmt.Fprintf(p.w, "%s\n", out)
			} else {
				fmt.Fprintf(p.w, "%s\n", msg)
			}
		}
		return nil
	})
	if err != nil {
		b.Ack(err)
		return err
	}
	for _, r := range rejects {
		if err := b.DeadLetter(ctx, r); err != nil {
			b.Ack(err)
			return err
		}
	}
	b.Ack(nil)
	return nil
}

func (p *previewSink) Close(context.Context) error { return nil }
