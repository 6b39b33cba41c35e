package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// Built is a pipeline whose plugins are constructed, ready to open.
type Built struct {
	Source     pipeline.Source
	Transforms []pipeline.Transform
	// TransformNames[i] names Transforms[i] in errors: "transform #2 filter".
	TransformNames []string
	Sink           pipeline.Sink
	Columns        pipeline.Columns // projection the source is asked for

	sinkClosed bool
	sinkErr    error
}

// Build constructs the plugins of cfg, collecting every constructor error.
// sink, when not nil, replaces the configured sink (a preview's); Build
// owns it from the call on. When a plugin fails to build, those already
// built are closed: constructors start nothing, but a source may hold a
// client.
func Build(cfg *config.Pipeline, env *pipeline.Env, reg *config.Registry, sink pipeline.Sink) (*Built, error) {
	if reg == nil {
		reg = config.Default
	}
	var errs []error
	b := &Built{Sink: sink}
	if p, ok := reg.Lookup(config.SourceKind, cfg.Source.Name); ok {
		src, err := p.NewSource(cfg.Source.Conf, env)
		errs = append(errs, err)
		b.Source = src
	}
	for _, tc := range cfg.Transforms {
		p, ok := reg.Lookup(config.TransformKind, tc.Name)
		if !ok {
			continue
		}
		t, err := p.NewTransform(tc.Conf, env)
		errs = append(errs, err)
		if t != nil {
			b.Transforms = append(b.Transforms, t)
			b.TransformNames = append(b.TransformNames, fmt.Sprintf("transform #%d %s", len(b.Transforms), tc.Name))
		}
	}
	if sink == nil {
		if p, ok := reg.Lookup(config.SinkKind, cfg.Sink.Name); ok {
			s, err := p.NewSink(cfg.Sink.Conf, env)
			errs = append(errs, err)
			b.Sink = s
		}
	}
	if err := errors.Join(errs...); err != nil {
		b.Close(context.Background(), env.Logger)
		if ces := config.AsConfigErrors(err); len(ces) > 0 && len(ces) == countLeaves(err) {
			return nil, ces.Sorted()
		}
		return nil, err
	}
	b.Columns = pipeline.AllColumns
	for i := len(b.Transforms) - 1; i >= 0; i-- {
		if p, ok := b.Transforms[i].(pipeline.Projector); ok {
			b.Columns = p.Requires(b.Columns)
		}
	}
	return b, nil
}

// CloseSink closes the sink once (later calls return the first's error):
// it delivers what is in flight until ctx ends.
func (b *Built) CloseSink(ctx context.Context) error {
	if !b.sinkClosed && b.Sink != nil {
		b.sinkClosed = true
		b.sinkErr = pipeline.Safely("closing the sink", func() error { return b.Sink.Close(ctx) })
	}
	return b.sinkErr
}

// Close closes the sink (unless closed already), the transforms and the
// source, in that order, logging a panic: it is the cleanup after a run or
// a failed build.
func (b *Built) Close(ctx context.Context, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := b.CloseSink(ctx); isPanic(err) {
		log.Error("closing the sink panicked", "error", err)
		logPanicStack(log, err)
	}
	for i, t := range b.Transforms {
		if c, ok := t.(io.Closer); ok {
			closeSafely(log, "closing "+b.TransformNames[i], c.Close)
		}
	}
	if c, ok := b.Source.(io.Closer); ok && c != nil {
		closeSafely(log, "closing the source", c.Close)
	}
}

func countLeaves(err error) int {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range u.Unwrap() {
			n += countLeaves(e)
		}
		return n
	}
	if err == nil {
		return 0
	}
	return 1
}
