// Package filewait lets a test wait for a file that another process writes
// to reach a size, to act at a known point of that process's work (stop it
// part way, say) without sleeping.
//
// On Linux it wakes on the kernel's inotify events for the file's
// directory, so it reacts to each write as it lands. Elsewhere, or where
// inotify is not available, it polls: another process's writes give no
// other signal to a portable program.
package filewait

import (
	"context"
	"os"
	"time"
)

// Size returns once the file at path (which need not exist yet) holds at
// least n bytes, or with ctx's error once ctx ends first.
func Size(ctx context.Context, path string, n int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ok, err := watch(ctx, path, n); ok {
		return err
	}
	return poll(ctx, path, n)
}

// reached says whether the file holds at least n bytes.
func reached(path string, n int64) bool {
	st, err := os.Stat(path)
	return err == nil && st.Size() >= n
}

// pollEvery bounds how late poll notices the size: a fraction of the
// shortest work a test would stop part way.
const pollEvery = 2 * time.Millisecond

// poll checks the size every pollEvery: the fallback where no file events
// can be had.
func poll(ctx context.Context, path string, n int64) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for !reached(path, n) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
