package format

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/backfillhq/backfill/pipeline/config"
)

// FieldSpecs declares the config fields every file-reading source shares:
// format, compression and a csv block. Append them to a source's spec.
func FieldSpecs() []*config.Field {
	return []*config.Field{
		config.String("format", "file format; default: from the file extension (.parquet/.pq, .csv/.tsv/.txt, .json/.jsonl/.ndjson, before any .gz/.zst)").
			Enum(Parquet, CSV, NDJSON).Optional().Example(Parquet),
		config.String("compression", "whole-file compression; default: from the extension (.gz, .zst), else from the file's first bytes").
			Enum(Gzip, Zstd, None).Optional(),
		config.Int("max_line_bytes", "longest NDJSON line or CSV record, in bytes (Segment takes messages of at most 32 KB); "+
			"a longer one is read past without being held, and set aside as a rejected row with its file, line, size and first 200 bytes").
			Default(DefaultMaxLineBytes).Check(checkMaxLineBytes),
		config.Object("csv", "how delimited text is read",
			config.Bool("header", "the first line names the columns").Default(true),
			config.String("delimiter", `field separator: ",", "|", "\t" (or "tab"); default "," ("\t" for .tsv)`).Optional().Example("|"),
			config.String("quote", "quote character around fields holding delimiters or newlines").Default(`"`),
			config.String("null", `the text of a NULL field: "\N" for Postgres COPY, "" for Redshift UNLOAD`).Default(""),
			config.Map("columns", "column types by name (undeclared columns are strings); without a header these name the columns in order",
				config.String("", "").Enum(ColumnTypes...)).Optional().Example(map[string]string{"amount": "float64", "created_at": "timestamp"}),
			config.Bool("postgres_text", `Postgres COPY text format: tab-separated, \N nulls, backslash escapes, no quoting`).Default(false),
		).Optional(),
	}
}

// OptionsFromConf reads the fields FieldSpecs declares from a source's
// config. Every problem is reported at once, positioned in the file.
func OptionsFromConf(c *config.Conf) (Options, error) {
	o := DefaultOptions()
	o.Format = c.String("format")
	o.Compression = c.String("compression")
	o.MaxLineBytes = c.Int("max_line_bytes")
	cc := c.Object("csv")
	if cc == nil {
		return o, nil
	}
	var errs []error
	o.CSV.Header = cc.Bool("header")
	o.CSV.PostgresText = cc.Bool("postgres_text")
	o.CSV.Null = cc.String("null")
	if o.CSV.PostgresText && !cc.IsSet("null") {
		o.CSV.Null = `\N`
	}
	if d := cc.String("delimiter"); d != "" {
		if d == "tab" {
			d = "\t"
		}
		r, n := utf8.DecodeRuneInString(d)
		switch {
		case n != len(d) || r == '\n' || r == '\r':
			errs = append(errs, cc.Errorf("delimiter", "delimiter must be one character other than a newline, got %q", d))
		case o.CSV.PostgresText && r != '\t':
			errs = append(errs, cc.Errorf("delimiter", "postgres_text is tab-separated; drop delimiter or set postgres_text: false"))
		default:
			o.CSV.Delimiter = r
		}
	}
	q := cc.String("quote")
	r, n := utf8.DecodeRuneInString(q)
	if n != len(q) || q == "" || r == '\n' || r == '\r' {
		errs = append(errs, cc.Errorf("quote", "quote must be one character, got %q", q))
	} else {
		o.CSV.Quote = r
		if r == o.CSV.Delimiter {
			errs = append(errs, cc.Errorf("quote", "quote and delimiter are both %q", q))
		}
	}
	for _, e := range cc.Map("columns") {
		t, _ := e.Value.(string)
		o.CSV.Columns = append(o.CSV.Columns, Column{Name: e.Key, Type: t})
	}
	return o, errors.Join(errs...)
}

func checkMaxLineBytes(v any) error {
	if n := v.(int); n < 1 || n > MaxMaxLineBytes {
		return fmt.Errorf("max_line_bytes must be between 1 and %d (1 GB), got %d", MaxMaxLineBytes, n)
	}
	return nil
}
