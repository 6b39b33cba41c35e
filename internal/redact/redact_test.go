package redact

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestRedactorReplacesEveryForm(t *testing.T) {
	const key = "wk_9Zx/q+7=Ab"
	r := New(key, "ab") // too short to replace: ordinary text would go
	for _, in := range []string{
		"key " + key + " here",
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(key+":")),
		"echo " + strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(key+":")), "="),
		"url https://api?k=" + strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(key, "/", "%2F"), "+", "%2B"), "=", "%3D"),
		"both " + base64.StdEncoding.EncodeToString([]byte(":"+key)),
	} {
		got := r.String(in)
		if strings.Contains(got, key) || !strings.Contains(got, Mark) {
			t.Errorf("%q -> %q", in, got)
		}
	}
	if got := r.String("a table about cabs"); got != "a table about cabs" {
		t.Errorf("a short secret replaced ordinary text: %q", got)
	}
	var buf bytes.Buffer
	w := r.Writer(&buf)
	if n, err := w.Write([]byte("log " + key + "\n")); err != nil || n != len("log "+key+"\n") {
		t.Fatalf("write: %d %v", n, err)
	}
	if buf.String() != "log "+Mark+"\n" {
		t.Errorf("writer wrote %q", buf.String())
	}
	var none *Redactor
	if none.String(key) != key || New().String(key) != key {
		t.Error("an empty redactor changed the text")
	}
}

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:KEY@api.segment.io/v1": "https://user:" + Mark + "@api.segment.io/v1",
		"https://KEY@api.segment.io":         "https://" + Mark + "@api.segment.io",
		"https://api.segment.io":             "https://api.segment.io",
		"not a url at all":                   "not a url at all",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
	if s := URLSecrets("https://user:KEY@host"); len(s) != 1 || s[0] != "KEY" {
		t.Errorf("secrets %v", s)
	}
	if s := URLSecrets("https://KEY@host"); len(s) != 1 || s[0] != "KEY" {
		t.Errorf("secrets %v", s)
	}
}

func TestHandlerRedactsRecords(t *testing.T) {
	var buf bytes.Buffer
	r := New("s3cr3t-key")
	log := slog.New(r.Handler(slog.NewTextHandler(&buf, nil))).With("endpoint", "https://u:s3cr3t-key@host")
	log.Info("sending with s3cr3t-key", "error", errors.New("HTTP 400: echo s3cr3t-key"), slog.Group("g", "k", "s3cr3t-key"))
	if strings.Contains(buf.String(), "s3cr3t-key") || strings.Count(buf.String(), Mark) != 4 {
		t.Fatalf("log: %s", buf.String())
	}
}
