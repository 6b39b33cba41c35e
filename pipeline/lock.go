package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Locker is implemented by checkpoint stores that can keep a second run of
// a pipeline (and shard) from starting while one is running: a cron job
// that fires again before the last run ended. Run holds the lock for the
// whole run. Stores without it rely on their writes being conditional.
type Locker interface {
	// Lock takes the lock without waiting, or returns a *LockedError.
	Lock() (unlock func() error, err error)
}

// LockedError says that another run holds the lock, and who.
type LockedError struct {
	Path   string
	Holder string // what the holder wrote: its pid, host and start time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("another run of this pipeline is running (%s holds %s): runs of one pipeline, "+
		"or of one shard, must not overlap", e.Holder, e.Path)
}

// Lock takes an advisory lock on the checkpoint's lock file (PATH.lock).
func (s *DirStore) Lock() (func() error, error) { return LockFile(s.Path + ".lock") }

// LockFile takes an advisory lock on path without waiting, writing who
// holds it there; a *LockedError says another process does. The system
// releases it when the process ends, however it ends, so a killed run
// never leaves a stale lock behind.
func LockFile(path string) (func() error, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if !held {
		data, _ := os.ReadFile(path)
		f.Close()
		holder := strings.TrimSpace(string(data))
		if holder == "" {
			holder = "another process"
		}
		return nil, &LockedError{Path: path, Holder: holder}
	}
	host, _ := os.Hostname()
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	return func() error {
		unlock(f)
		return f.Close()
	}, nil
}

// Holder says whether a run holds the lock now, and what it wrote (its
// pid, host and start time). It tests with a shared lock, which a starting
// run would only find in its way for the instant it is held.
func (s *DirStore) Holder() (string, bool) { return LockHolder(s.Path + ".lock") }

// LockHolder says whether a process holds the lock LockFile took on path,
// and what it wrote there.
func LockHolder(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	if free, err := tryShared(f); err != nil || free {
		if free {
			unlock(f)
		}
		return "", false
	}
	data, _ := os.ReadFile(path)
	return strings.TrimSpace(string(data)), true
}
