package segment

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/acktest"
	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline"
)

// When the run stops (the context given to Open ends) while requests are
// being retried, the sink gives up on them as the grace runs out (Close's
// context ends) or their retries are spent, and abandons them: their
// batches are acked with ErrStopped, to be sent again on resume, instead
// of failing the run.
func TestStopAbandonsRetries(t *testing.T) {
	for _, tc := range []struct {
		name, retry string
		grace       func() (context.Context, context.CancelFunc)
	}{
		{"the grace ends", "initial_backoff: 1h\n    max_backoff: 1h", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // already over
			return ctx, cancel
		}},
		{"the retries are spent", "max_attempts: 3\n    initial_backoff: 1ms\n    max_backoff: 2ms", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := arrowtest.CheckedMem(t)
			attempts := make(chan struct{}, 100)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case attempts <- struct{}{}:
				default:
				}
				http.Error(w, "upstream down", http.StatusServiceUnavailable)
			}))
			defer srv.Close()
			c, err := loadConf(t, "endpoint: "+srv.URL+"\nwrite_key: KEY\nbatch:\n  flush_interval: 10ms\nrequest:\n  retry:\n    "+tc.retry+"\n")
			if err != nil {
				t.Fatal(err)
			}
			opts, err := OptionsFromConf(c)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(opts, &pipeline.Env{Name: "test"})
			if err != nil {
				t.Fatal(err)
			}
			run, stop := context.WithCancel(context.Background())
			if err := s.Open(run); err != nil {
				t.Fatal(err)
			}
			rec := &acktest.Recorder{}
			if err := s.Write(context.Background(), rec.Watch(makeBatch(mem, "s", 0, 10, nil))); err != nil {
				t.Fatal(err)
			}
			<-attempts // the first attempt failed
			stop()
			grace, cancel := tc.grace()
			defer cancel()
			err = s.Close(grace)
			if !errors.Is(err, pipeline.ErrStopped) {
				t.Fatalf("Close = %v, want ErrStopped", err)
			}
			if ok, failed := rec.Check(t, 1); ok != 0 || failed != 1 || rec.Delivered() != 0 {
				t.Fatalf("ok=%d failed=%d delivered=%d", ok, failed, rec.Delivered())
			}
			for _, e := range rec.Errs() {
				if !errors.Is(e, pipeline.ErrStopped) {
					t.Fatalf("batch acked with %v", e)
				}
			}
		})
	}
}

// default_retry_after is the spec's default when unset, and 0 means no
// wait: the spec is the one place a default is written.
func TestDefaultRetryAfterZeroMeansNoWait(t *testing.T) {
	if d := DefaultOptions().DefaultRetryAfter; d != time.Second {
		t.Fatalf("default %v, want the spec's 1s", d)
	}
	c, err := loadConf(t, "write_key: KEY\nrequest:\n  retry:\n    default_retry_after: 0s\n")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := OptionsFromConf(c)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if d := s.retryAfter(http.Header{}); d != 0 {
		t.Fatalf("a 429 without Retry-After waits %v, want 0", d)
	}
}
