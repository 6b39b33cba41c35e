package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LockedError says that another run holds the lock, and who.
type LockedError struct {
	Path   string
	Holder string // what the holder wrote: its pid, host and start time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("another run of this pipeline is running (%s holds %s): runs of one pipeline, "+
		"or of one shard, must not overlap", e.Holder, e.Path)
}

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

// LockHolder says whether a process holds the lock LockFile took on path,
// and what it wrote there (its pid, host and start time). It tests with a
// shared lock, which a starting run would only find in its way for the
// instant it is held.
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
