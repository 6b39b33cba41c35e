package acktest

import (
	"context"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// Discard is a sink that acknowledges and drops every batch: a pipeline
// file needs a sink, and a source's test only its rows.
type Discard struct{}

func (Discard) Open(context.Context) error  { return nil }
func (Discard) Close(context.Context) error { return nil }
func (Discard) Write(_ context.Context, b *pipeline.Batch) error {
	b.Ack(nil)
	b.Release()
	return nil
}

// DiscardPlugin declares Discard as the sink name, with the fields of
// spec (nil: none), for a test's registry.
func DiscardPlugin(name string, spec *config.Spec) config.Plugin {
	if spec == nil {
		spec = config.NewSpec("a test sink that drops every batch")
	}
	return config.SinkPlugin(name, spec, func(*config.Conf, *pipeline.Env) (pipeline.Sink, error) { return Discard{}, nil })
}
