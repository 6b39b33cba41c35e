package engine

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/sinks/segment"
)

// closeRecorder is a sink that records that it was closed.
type closeRecorder struct{ closed, opened bool }

func (s *closeRecorder) Open(context.Context) error                   { s.opened = true; return nil }
func (s *closeRecorder) Write(context.Context, *pipeline.Batch) error { return nil }
func (s *closeRecorder) Close(context.Context) error                  { s.closed = true; return nil }

// A pipeline whose source fails to build closes the sink it built: it was
// never opened, and nothing it made stays behind (the real Segment sink
// included: it starts its senders only when opened).
func TestBuildClosesWhatItBuiltWhenAPluginFails(t *testing.T) {
	defer goleak.VerifyNone(t)
	sink := &closeRecorder{}
	reg := config.NewRegistry()
	reg.Register(config.SourcePlugin("broken", config.NewSpec("fails to build"), func(*config.Conf, *pipeline.Env) (pipeline.Source, error) {
		return nil, errors.New("no such bucket")
	}))
	reg.Register(config.SinkPlugin("recorder", config.NewSpec("records Close"), func(*config.Conf, *pipeline.Env) (pipeline.Sink, error) {
		return sink, nil
	}))
	reg.Register(segment.Plugins()...)
	for _, yaml := range []string{
		"name: p\nsource: {broken: {}}\nsink: {recorder: {}}\n",
		"name: p\nsource: {broken: {}}\nsink: {segment: {write_key: k, endpoint: 'http://127.0.0.1:9'}}\n",
	} {
		cfg, err := config.Load("p.yaml", []byte(yaml), config.LoadOptions{Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Build(cfg, &pipeline.Env{Name: "p"}, reg, nil); err == nil {
			t.Fatal("want the source's error")
		}
	}
	if !sink.closed || sink.opened {
		t.Fatalf("sink closed=%v opened=%v: want closed, never opened", sink.closed, sink.opened)
	}
}

// A constructor's config error comes back positioned at its field.
func TestConstructorErrorsArePositioned(t *testing.T) {
	reg := config.NewRegistry()
	reg.Register(config.SourcePlugin("s3", config.NewSpec("test s3", config.String("bucket", ""), config.Int("max_keys", "").Default(1000)),
		func(c *config.Conf, env *pipeline.Env) (pipeline.Source, error) {
			return nil, c.Errorf("max_keys", "max_keys %d is over S3's 1000", c.Int("max_keys"))
		}))
	reg.Register(config.SinkPlugin("recorder", config.NewSpec("records Close"), func(*config.Conf, *pipeline.Env) (pipeline.Sink, error) {
		return &closeRecorder{}, nil
	}))
	src := "name: x\nsource:\n  s3:\n    bucket: b\n    max_keys: 5000\nsink: {recorder: {}}\n"
	cfg, err := config.Load("p.yaml", []byte(src), config.LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(cfg, &pipeline.Env{}, reg, nil)
	ces := config.AsConfigErrors(err)
	if len(ces) != 1 || ces[0].Line != 5 || ces[0].Col != 15 || ces[0].Path != "/source/s3/max_keys" {
		t.Fatalf("got %v (%#v)", err, ces)
	}
}
