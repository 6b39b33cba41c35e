package bigquery

import (
	"path/filepath"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/acktest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	_ "github.com/backfillhq/backfill/transforms" // the configs' transforms
)

// The example pipelines load and the source accepts them (offline: no
// connection is made before Splits).
func TestExampleConfigs(t *testing.T) {
	reg := config.NewRegistry()
	reg.Register(Plugins()...)
	for _, p := range config.Default.All() {
		if p.Kind == config.TransformKind {
			reg.Register(*p)
		}
	}
	// The file sink belongs to another package; a stand-in with its field.
	reg.Register(acktest.DiscardPlugin("file", config.NewSpec("stand-in", config.String("path", ""))))
	for _, name := range []string{"bigquery-table.yaml", "bigquery-query.yaml", "bigquery-incremental.yaml"} {
		cfg, err := config.LoadFile(filepath.Join("..", "..", "configs", name), config.LoadOptions{
			Registry: reg, LookupEnv: func(string) (string, bool) { return "", false },
		})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := New(cfg.Source.Conf, &pipeline.Env{Name: cfg.Name, State: newState()}); err != nil {
			t.Errorf("%s: source: %v", name, err)
		}
	}
}
