package config_test

import (
	"testing"

	_ "github.com/backfillhq/backfill/internal/plugins"
	"github.com/backfillhq/backfill/pipeline/config"
)

// Every example a plugin documents is a config its spec accepts.
func TestPluginExamplesParse(t *testing.T) {
	n := 0
	for _, p := range config.Default.All() {
		if err := p.CheckExamples(); err != nil {
			t.Errorf("%v", err)
		}
		n += len(p.Spec.Examples())
	}
	if n < 20 {
		t.Fatalf("only %d examples checked", n)
	}
}
