package main

import (
	"os"
	"runtime/debug"
	"testing"

	"go.uber.org/goleak"

	"github.com/backfillhq/backfill/internal/testkit/s3test"
)

// The commands run in this process (execute): goleak checks that a run
// leaves none of its goroutines behind. Without a minio binary the S3
// tests skip, and Report says so in one line.
func TestMain(m *testing.M) { goleak.VerifyTestMain(s3test.Report(m)) }

// The run's GOGC is gcPercent unless the environment says otherwise.
func TestGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "50")
	if setGCPercent() {
		t.Fatal("GOGC=50 in the environment was overridden")
	}
	if old := debug.SetGCPercent(100); old != 100 {
		t.Fatalf("GC percent %d, want the environment's to stand", old)
	}
	// t.Setenv cannot unset; os.Unsetenv is restored by the Setenv above.
	unsetenv(t, "GOGC")
	if !setGCPercent() {
		t.Fatal("no GOGC: the default was not applied")
	}
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Fatalf("GC percent %d, want %d", got, gcPercent)
	}
}

func unsetenv(t *testing.T, key string) {
	t.Helper()
	if err := os.Unsetenv(key); err != nil {
		t.Fatal(err)
	}
}
