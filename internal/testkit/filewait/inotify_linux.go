package filewait

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// watch waits on inotify events for path's directory, checking the size
// after each. ok is false when inotify cannot be used (the caller polls
// then).
func watch(ctx context.Context, path string, n int64) (ok bool, err error) {
	// Non-blocking, so os.NewFile hands it to the runtime's poller and a
	// read deadline can interrupt a read.
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return false, nil
	}
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	// The directory, not the file: the file may not exist yet.
	mask := uint32(unix.IN_CREATE | unix.IN_MODIFY | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE)
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), mask); err != nil {
		return false, nil
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 64<<10)
	// Checked once the watch is in place, then after each batch of
	// events: no write can go unseen.
	for !reached(path, n) {
		if _, err := f.Read(buf); err != nil {
			if cerr := ctx.Err(); cerr != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				return true, cerr
			}
			return true, err
		}
	}
	return true, nil
}
