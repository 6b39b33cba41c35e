// Package configs_test runs the shipped pipelines end to end: the real CLI
// binary against local servers (an in-process BigQuery, MinIO, a Segment
// receiver), with endpoints given through the variables the configs read.
package configs_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/ndjsontest"
	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"go.uber.org/goleak"
)

var cliBin string

// TestMain builds the CLI once. The tests run servers in this process (a
// Segment receiver, BigQuery's gRPC and REST servers, MinIO's clients):
// goleak checks that none is left running. Without a minio binary the S3
// tests skip, and Report says so in one line.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "backfill-cli-")
	if err != nil {
		panic(err)
	}
	cliBin = filepath.Join(dir, "backfill")
	build := exec.Command("go", "build", "-o", cliBin, "../cmd/backfill")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the CLI:", err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(s3test.Report(m), goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// configPath is a shipped config's absolute path.
func configPath(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), name)
}

// cliCommand is the binary with args, to run in dir with extra environment
// variables.
func cliCommand(dir string, env map[string]string, args ...string) *exec.Cmd {
	cmd := exec.Command(cliBin, args...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// runCLI runs the binary in dir with extra environment variables.
func runCLI(t *testing.T, dir string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	cmd := cliCommand(dir, env, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}

func mustRun(t *testing.T, dir string, env map[string]string, args ...string) string {
	t.Helper()
	code, out := runCLI(t, dir, env, args...)
	if code != 0 {
		t.Fatalf("backfill %v: exit %d\n%s", args, code, out)
	}
	return out
}

// readNDJSON decodes an NDJSON file.
func readNDJSON(t *testing.T, path string) []map[string]any { return ndjsontest.Read(t, path) }

// at reads a nested field: at(m, "context", "ip").
func at(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[p]
	}
	return v
}
