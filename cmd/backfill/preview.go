package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"

	"github.com/backfillhq/backfill/pipeline"
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
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args[0])
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
			opts := pipeline.RunOptions{Version: version, DryRun: true, Limit: rows, Sink: ps,
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
			rep, err := pipeline.Run(context.Background(), cfg, opts)
			if err != nil {
				if len(pipeline.AsConfigErrors(err)) > 0 {
					return configExit(err)
				}
				return &exitError{exitFailed, err}
			}
			fmt.Fprintf(stdout, "# preview of %s: read %d rows: %d would be sent, %d rejected, %d filtered\n",
				cfg.Name, rep.RowsRead, rep.RowsDelivered-ps.rejected, rep.RowsRejected+ps.rejected, rep.RowsFiltered)
			return nil
		},
	}
	cmd.Flags().Int64Var(&rows, "rows", 1000, "rows to read")
	cmd.Flags().IntVar(&show, "show", 5, "messages (and rejects) to print")
	return cmd
}

// previewSink encodes like the real sinks and prints the first messages.
type previewSink struct {
	mu    sync.Mutex
	w     io.Writer
	show  int
	shown int
	// rejected counts the encoder's rejects: the real sinks would
	// dead-letter them, the preview only prints them.
	rejected int64
	enc      *message.Encoder
}

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
		if r.Stage == "" {
			r.Stage = "sink"
		}
		p.rejected++
		fmt.Fprintf(p.w, "# rejected: %s row %d (%s): %s\n", b.Split, r.Row, r.Stage, r.Reason)
	}
	b.Ack(nil)
	return nil
}

func (p *previewSink) Close(context.Context) error { return nil }
