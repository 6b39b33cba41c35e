// Command sampledata writes the committed sample inputs:
//
//	go run ./internal/sampledata/cmd -out configs/sample
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"

	"github.com/backfillhq/backfill/internal/testkit/sampledata"
)

func main() {
	out := flag.String("out", "configs/sample", "directory to write into")
	seed := flag.Int64("seed", 1, "random seed")
	flag.Parse()
	if err := run(*out, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "sampledata:", err)
		os.Exit(1)
	}
}

func run(out string, seed int64) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		// Small row groups so the sample shows resuming across them.
		{"orders.parquet", func(w io.Writer) error { return sampledata.WriteOrdersParquetRowGroups(w, 3000, seed, 1000) }},
		{"signups.csv", func(w io.Writer) error { return sampledata.WriteSignupsCSV(w, 2000, seed) }},
		{"archive.ndjson.gz", func(w io.Writer) error {
			zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
			if err != nil {
				return err
			}
			// No name or time in the header: the bytes stay the same.
			if err := sampledata.WriteArchiveNDJSON(zw, 1000, seed); err != nil {
				return err
			}
			return zw.Close()
		}},
	}
	for _, f := range files {
		p := filepath.Join(out, f.name)
		fh, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := f.write(fh); err != nil {
			fh.Close()
			return fmt.Errorf("%s: %w", p, err)
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	return nil
}
