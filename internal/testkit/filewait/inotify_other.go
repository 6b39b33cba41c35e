//go:build !linux

package filewait

import "context"

// watch has no file events to wait on here: the caller polls.
func watch(context.Context, string, int64) (bool, error) { return false, nil }
