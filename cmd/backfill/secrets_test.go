package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeKeyVar is the write key's variable in the tests' pipeline: unset.
const writeKeyVar = "BACKFILL_TEST_WRITE_KEY"

// segmentPipeline writes a pipeline reading a local CSV and sending to
// Segment with write_key: ${BACKFILL_TEST_WRITE_KEY}, its state in a temp
// directory, and leaves the variable unset.
func segmentPipeline(t *testing.T) (cfg, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	csv := filepath.Join(dir, "signups.csv")
	if err := os.WriteFile(csv, []byte("user_id,email,signed_up_at\nusr_1,a@example.com,2024-01-01T00:07:33Z\nusr_2,b@example.com,2024-01-02T00:07:33Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stateDir = filepath.Join(dir, "state")
	cfg = filepath.Join(dir, "p.yaml")
	doc := "name: signups\n" +
		"source:\n  file:\n    path: " + csv + "\n    csv: {header: true}\n" +
		"transforms:\n  - map:\n      type: identify\n      userId: user_id\n      timestamp: signed_up_at\n      traits: {email: email}\n" +
		"sink:\n  segment:\n    endpoint: http://127.0.0.1:1\n    write_key: ${" + writeKeyVar + "}\n" +
		"state: " + stateDir + "\n"
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(writeKeyVar, "set") // restored after the test
	unsetenv(t, writeKeyVar)
	return cfg, stateDir
}

// validate, preview and status send nothing: the write key's variable
// unset is a warning for validate, and nothing at all for preview and
// status. run needs it: exit 2.
func TestUnsetSecretOnlyStopsRun(t *testing.T) {
	cfg, stateDir := segmentPipeline(t)

	code, stdout, stderr := runCLI(t, "", "validate", cfg)
	if code != exitOK {
		t.Fatalf("validate: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, `pipeline "signups" is valid`) {
		t.Errorf("validate stdout:\n%s", stdout)
	}
	warn := "warning: " + cfg + ":15:16: /sink/segment/write_key: environment variable " + writeKeyVar + " is not set"
	if !strings.Contains(stderr, warn) || strings.Count(stderr, "warning:") != 1 {
		t.Errorf("validate stderr lacks %q:\n%s", warn, stderr)
	}

	code, stdout, _ = runCLI(t, "", "validate", "--format", "json", cfg)
	var res struct {
		Valid    bool
		Errors   []map[string]any
		Warnings []map[string]any
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != exitOK || !res.Valid || len(res.Errors) != 0 || len(res.Warnings) != 1 {
		t.Fatalf("validate --format json: exit %d %v\n%s", code, err, stdout)
	}
	if w := res.Warnings[0]; w["code"] != "unset_secret" || w["path"] != "/sink/segment/write_key" ||
		!strings.Contains(w["message"].(string), writeKeyVar) || w["line"] != float64(15) {
		t.Errorf("warning %v", w)
	}

	code, stdout, stderr = runCLI(t, "", "preview", "--show", "1", cfg)
	if code != exitOK || !strings.Contains(stdout, `"userId": "usr_1"`) || !strings.Contains(stdout, "2 would be sent") {
		t.Fatalf("preview: exit %d\n%s%s", code, stdout, stderr)
	}

	code, stdout, stderr = runCLI(t, "", "status", cfg)
	if code != exitOK || !strings.Contains(stdout, "signups") {
		t.Fatalf("status: exit %d\n%s%s", code, stdout, stderr)
	}

	code, stdout, stderr = runCLI(t, "", "run", "--progress", "none", cfg)
	want := cfg + ":15:16: /sink/segment/write_key: environment variable " + writeKeyVar + " is not set"
	if code != exitConfig || !strings.Contains(stderr, want) {
		t.Fatalf("run: exit %d, want %d with %q\n%s%s", code, exitConfig, want, stdout, stderr)
	}
	if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
		t.Errorf("run wrote state before refusing the pipeline: %v", err)
	}
}

// Only secret fields: an unset variable anywhere else fails validate too.
func TestUnsetVariableOutsideASecretFailsValidate(t *testing.T) {
	cfg, _ := segmentPipeline(t)
	data, _ := os.ReadFile(cfg)
	doc := strings.Replace(string(data), "name: signups", "name: ${"+writeKeyVar+"}", 1)
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "", "validate", cfg)
	if code != exitConfig || !strings.Contains(stderr, cfg+":1:7: /name: environment variable "+writeKeyVar+" is not set") {
		t.Fatalf("validate: exit %d\n%s", code, stderr)
	}
}
