package config

import (
	"strings"
	"testing"
)

// With SecretsOptional (validate, preview, status) a secret field whose
// variable is unset is a warning and reads as ""; any other unset variable
// is still an error, and without the option (run) so is the secret's.
func TestSecretsOptional(t *testing.T) {
	const doc = "name: x\nsource: {s3: {bucket: \"${BUCKET:-acme}\"}}\nsink:\n  segment:\n    write_key: ${KEY}\n"
	load := func(doc string, optional bool, kv ...string) (*Pipeline, error) {
		return Load("p.yaml", []byte(doc), LoadOptions{Registry: testRegistry(), LookupEnv: env(kv...), SecretsOptional: optional})
	}

	// run: an error, as before.
	_, err := load(doc, false)
	if ces := AsConfigErrors(err); len(ces) != 1 || ces[0].Code != CodeUnsetEnv || ces[0].Line != 5 || ces[0].Col != 16 {
		t.Fatalf("strict: got %v", err)
	}

	// validate, preview, status: a warning at the field, naming the variable.
	cfg, err := load(doc, true)
	if err != nil {
		t.Fatalf("lenient: %v", err)
	}
	if len(cfg.Warnings) != 1 {
		t.Fatalf("warnings %v", cfg.Warnings)
	}
	w := cfg.Warnings[0]
	if w.Code != CodeUnsetSecret || w.Line != 5 || w.Col != 16 || w.Path != "/sink/segment/write_key" ||
		!strings.Contains(w.Error(), "environment variable KEY is not set") || !strings.Contains(w.Error(), "export KEY") {
		t.Errorf("warning %+v: %v", w, w)
	}
	sink := cfg.Sink.Conf
	if !sink.Unset("write_key") || sink.String("write_key") != "" || !sink.IsSet("write_key") {
		t.Errorf("write_key: unset %v, %q", sink.Unset("write_key"), sink.String("write_key"))
	}
	if cfg.Source.Conf.Unset("bucket") {
		t.Error("bucket is not a secret left unset")
	}

	// Set: no warning.
	cfg, err = load(doc, true, "KEY", "k")
	if err != nil || len(cfg.Warnings) != 0 || cfg.Sink.Conf.Unset("write_key") || cfg.Sink.Conf.String("write_key") != "k" {
		t.Fatalf("set: %v %v", err, cfg.Warnings)
	}

	// Only secret fields: an unset variable elsewhere is an error still,
	// beside the secret's warning.
	_, err = load(strings.Replace(doc, "${BUCKET:-acme}", "${BUCKET}", 1), true)
	if ces := AsConfigErrors(err); len(ces) != 1 || ces[0].Code != CodeUnsetEnv || !strings.Contains(ces[0].Msg, "BUCKET") {
		t.Fatalf("non-secret: got %v", err)
	}

	// Part of the value, or two variables: a warning per variable.
	cfg, err = load(strings.Replace(doc, "${KEY}", "${A}-${B}", 1), true)
	if err != nil || len(cfg.Warnings) != 2 || !strings.Contains(cfg.Warnings[1].Msg, "B is not set") || cfg.Sink.Conf.String("write_key") != "-" {
		t.Fatalf("two variables: %v %v", err, cfg.Warnings)
	}
}

// An unset secret counts as set for the rules: run will have it.
func TestUnsetSecretSatisfiesRules(t *testing.T) {
	doc := "name: x\nsource:\n  src:\n    table: a.b.c\n    key_id: k\n    secret: ${SECRET}\nsink: {snk: {}}\n"
	cfg, err := Load("p.yaml", []byte(doc), LoadOptions{Registry: rulesRegistry(), LookupEnv: env(), SecretsOptional: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Code != CodeUnsetSecret {
		t.Fatalf("warnings: %v", cfg.Warnings)
	}
}
