package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A usage error exits 2, as the README says: a missing argument, an
// unknown command or flag, a pipeline file that cannot be read.
func TestUsageErrorsExit2(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "accepts 1 arg(s), received 0 (usage: backfill run PIPELINE.yaml"},
		{[]string{"run", missing}, "nope.yaml: cannot read the pipeline file: no such file or directory"},
		{[]string{"validate", missing}, "cannot read the pipeline file"},
		{[]string{"preview", missing}, "cannot read the pipeline file"},
		{[]string{"status", missing}, "cannot read the pipeline file"},
		{[]string{"run", "--nope", "p.yaml"}, "unknown flag: --nope"},
		{[]string{"rnu", "p.yaml"}, `unknown command "rnu" (did you mean "run"?)`},
		{[]string{"schema", "extra"}, "unknown command"},
	} {
		code, _, stderr := runCLI(t, "", tc.args...)
		if code != exitConfig || !strings.Contains(stderr, tc.want) {
			t.Errorf("backfill %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr, exitConfig, tc.want)
		}
	}
}

// Flags with a fixed set of values refuse any other (exit 2, naming
// them), and plugins suggests a near name.
func TestFlagValuesAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--progress", "fancy", "p.yaml"}, `"fancy" is not one of auto, bar, log, none`},
		{[]string{"run", "--log-format", "jsn", "p.yaml"}, `"jsn" is not one of text, json (did you mean "json"?)`},
		{[]string{"run", "--log-level", "verbose", "p.yaml"}, `"verbose" is not one of info, debug, warn, error`},
		{[]string{"validate", "--format", "yml", "p.yaml"}, `"yml" is not one of text, json`},
		{[]string{"plugins", "--format", "md"}, `"md" is not one of text, markdown`},
		{[]string{"plugins", "segmnt"}, `no plugin named "segmnt" (did you mean "segment"?)`},
	} {
		code, _, stderr := runCLI(t, "", tc.args...)
		if code != exitConfig || !strings.Contains(stderr, tc.want) {
			t.Errorf("backfill %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr, exitConfig, tc.want)
		}
	}
}
