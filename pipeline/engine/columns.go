package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// ColumnCheck is what CheckColumns did.
type ColumnCheck struct {
	// Columns are the source columns the pipeline reads (Built.Columns),
	// nil when it reads every column.
	Columns []string
	// Where names what was read to learn the data's columns ("orders.parquet",
	// "table p.d.t"); "" when they were not learned.
	Where string
	// Skipped says why the columns were not compared with the data; ""
	// when they were.
	Skipped string
	// Remote is set when they were not compared because that costs a
	// request to the source (pipeline.SchemaPeeker.PeekRemote) and the
	// caller did not allow one.
	Remote bool
}

// CheckColumns compares the source columns the pipeline reads (b.Columns:
// exactly those some transform reads before any renames them) with the
// data's, as the source names them without reading rows
// (pipeline.SchemaPeeker). A source whose peek sends a request is asked
// only when remote is true.
//
// Each column missing from the data is a *config.ConfigError with code
// CodeUnknownColumn, positioned at the value that names it in the first
// transform that reads it (pipeline.ColumnNamer), with a "did you mean"
// over all the data's columns, or a few of them when none is close. The
// errors come back as config.ConfigErrors in file order. Any other error
// is the peek's: the data's columns could not be read.
func CheckColumns(ctx context.Context, b *Built, remote bool) (ColumnCheck, error) {
	var c ColumnCheck
	if b.Columns.All {
		c.Skipped = `the pipeline reads every column of the source (map with "*" or a convention, or no transform naming the columns it reads)`
		return c, nil
	}
	c.Columns = append([]string(nil), b.Columns.Names...)
	p, ok := b.Source.(pipeline.SchemaPeeker)
	if !ok {
		c.Skipped = "the source cannot name its columns without reading its rows"
		return c, nil
	}
	if p.PeekRemote() && !remote {
		c.Skipped, c.Remote = "learning them takes a request to the source", true
		return c, nil
	}
	var names []string
	var where string
	err := pipeline.Safely("reading the data's columns", func() (err error) {
		names, where, err = p.PeekColumns(ctx)
		return err
	})
	if err != nil {
		c.Skipped = "the data's columns could not be read: " + err.Error()
		return c, err
	}
	c.Where = where
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	var errs []error
	for _, name := range c.Columns {
		if have[name] {
			continue
		}
		msg := fmt.Sprintf("column %q is not in %s", name, where)
		hint := ""
		if s := config.Suggest(name, names); s != "" {
			hint = fmt.Sprintf("did you mean %q?", s)
		} else {
			hint = "its columns: " + listSome(names, 10)
		}
		for _, t := range b.Transforms {
			if n, ok := t.(pipeline.ColumnNamer); ok {
				if err := n.ColumnError(name, msg, hint); err != nil {
					errs = append(errs, err)
					break
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		if ces := config.AsConfigErrors(err); len(ces) == countLeaves(err) {
			return c, ces.Sorted()
		}
		return c, err
	}
	return c, nil
}

// listSome lists the first max names, and how many more there are.
func listSome(names []string, max int) string {
	if len(names) == 0 {
		return "none"
	}
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, ... (%d more)", strings.Join(names[:max], ", "), len(names)-max)
}
