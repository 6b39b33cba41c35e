package sampledata

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestDeterministic(t *testing.T) {
	for name, w := range map[string]func(io.Writer, int, int64) error{
		"parquet": WriteOrdersParquet, "csv": WriteSignupsCSV, "ndjson": WriteArchiveNDJSON,
	} {
		var a, b, c bytes.Buffer
		if err := w(&a, 200, 1); err != nil {
			t.Fatal(name, err)
		}
		w(&b, 200, 1)
		w(&c, 200, 2)
		if !bytes.Equal(a.Bytes(), b.Bytes()) || bytes.Equal(a.Bytes(), c.Bytes()) {
			t.Errorf("%s: same seed must give the same bytes, another seed others", name)
		}
		if name != "parquet" {
			if n := strings.Count(a.String(), "\n"); n < 200 {
				t.Errorf("%s: %d lines", name, n)
			}
		}
	}
}
