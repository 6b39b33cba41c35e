package main

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A write key never appears in what a run writes: not when the endpoint
// URL carries it as user info, not when the server echoes the
// Authorization header (base64) back in an error body that ends up in
// the dead letters, the errors, the summary or the report.
func TestSecretsNeverAppear(t *testing.T) {
	const key = "wk_SECRET_7f3a9"
	basic := base64.StdEncoding.EncodeToString([]byte(key + ":"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A collector that echoes what it was sent: the Authorization
		// header and the URL's user info.
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"rejected","authorization":%q,"user":%q}`, r.Header.Get("Authorization"), r.URL.User.String())
	}))
	defer srv.Close()
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("user_id,event,ts\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&csv, "u%d,Signed Up,2024-03-01T10:00:%02dZ\n", i, i)
	}
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte(csv.String()), 0o644)
	endpoint := strings.Replace(srv.URL, "http://", "http://"+key+":"+key+"@", 1)
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte(`name: secrets
source: {file: {path: `+dir+`/in.csv, csv: {header: true}}}
transforms:
  - map: {type: track, event: event, userId: user_id, timestamp: ts}
  - timestamp: {field: timestamp}
sink:
  segment:
    endpoint: `+endpoint+`
    write_key: ${TEST_WRITE_KEY}
    request: {retry: {initial_backoff: 1ms, max_backoff: 2ms}}
state: `+dir+`/state
max_rejects: none
`), 0o644)
	t.Setenv("TEST_WRITE_KEY", key)
	report := filepath.Join(dir, "report.json")
	code, stdout, stderr := runCLI(t, "", "run", "--progress", "none", "--log-level", "debug", "--report", report, cfg)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	dead, _ := os.ReadFile(filepath.Join(dir, "state", "secrets", "dead-letters.ndjson"))
	rep, _ := os.ReadFile(report)
	if !strings.Contains(string(dead), `"status":400`) || !strings.Contains(string(dead), "[redacted]") {
		t.Fatalf("the dead letters do not hold the redacted 400 bodies:\n%s", dead)
	}
	for name, text := range map[string]string{"stdout": stdout, "stderr": stderr, "report": string(rep), "dead letters": string(dead)} {
		for _, form := range []string{key, basic, strings.TrimRight(basic, "=")} {
			if strings.Contains(text, form) {
				t.Errorf("%s holds the write key (as %q):\n%s", name, form, text)
			}
		}
	}
}
