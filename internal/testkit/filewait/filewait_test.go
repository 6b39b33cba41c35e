package filewait

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func appendTo(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, n)); err != nil {
		t.Error(err)
	}
}

// result waits for Size's answer; the bound only keeps a broken Size from
// hanging the test.
func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Size did not return")
		return nil
	}
}

// waiter is the way of waiting to test: inotify events (on Linux; Size
// elsewhere) or polling.
func waiter(how string) func(context.Context, string, int64) error {
	switch {
	case how == "poll":
		return poll
	case runtime.GOOS != "linux":
		return Size
	}
	return func(ctx context.Context, path string, n int64) error {
		ok, err := watch(ctx, path, n)
		if !ok {
			return errors.New("inotify is not available")
		}
		return err
	}
}

func TestSizeReturnsOnceTheFileIsLargeEnough(t *testing.T) {
	for _, how := range []string{"events", "poll"} {
		t.Run(how, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			wait := waiter(how)
			done := make(chan error, 1)
			go func() { done <- wait(context.Background(), path, 100) }()
			// Created, then grown past the size in steps; whether Size
			// starts watching before or after any step, it must see the
			// last one.
			appendTo(t, path, 10)
			appendTo(t, path, 60)
			appendTo(t, path, 40)
			if err := result(t, done); err != nil {
				t.Fatalf("Size = %v", err)
			}
			// Already large enough: at once.
			if err := wait(context.Background(), path, 110); err != nil {
				t.Fatalf("Size on a large enough file = %v", err)
			}
		})
	}
}

func TestSizeEndsWithTheContext(t *testing.T) {
	for _, how := range []string{"events", "poll"} {
		t.Run(how, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			appendTo(t, path, 10)
			wait := waiter(how)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- wait(ctx, path, 100) }()
			// Writes short of the size do not end the wait.
			appendTo(t, path, 20)
			cancel()
			if err := result(t, done); !errors.Is(err, context.Canceled) {
				t.Fatalf("Size with 30 of 100 bytes, cancelled = %v, want context.Canceled", err)
			}
		})
	}
}
