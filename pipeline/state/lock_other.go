//go:build !unix

package state

import "os"

// tryLock does not lock where flock is missing (Windows): overlapping runs
// are not detected there.
func tryLock(*os.File) (bool, error) { return true, nil }

func tryShared(*os.File) (bool, error) { return true, nil }

func unlock(*os.File) {}
