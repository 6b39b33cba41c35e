package bigquery

import (
	"context"
	"fmt"

	bq "cloud.google.com/go/bigquery"

	"github.com/backfillhq/backfill/pipeline"
)

var _ pipeline.SchemaPeeker = (*Source)(nil)

// PeekRemote is true: a peek sends a request to BigQuery.
func (s *Source) PeekRemote() bool { return true }

// PeekColumns names the columns the source can read: a table's from its
// metadata (tables.get), a query's from a dry run (jobs.insert with
// dryRun: BigQuery plans the query and returns its result's schema without
// running it, and bills nothing). With columns set, only those of them the
// data has. It creates no read session and no job.
func (s *Source) PeekColumns(ctx context.Context) ([]string, string, error) {
	if err := s.connect(ctx); err != nil {
		return nil, "", err
	}
	var schema bq.Schema
	var where string
	if s.query != "" {
		q := s.bq.Query(s.query)
		q.Parameters = s.params
		q.DryRun = true
		if s.location != "" {
			q.Location = s.location
		}
		job, err := q.Run(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("bigquery: a dry run of the query: %s", describeQueryErr(err))
		}
		var qs *bq.QueryStatistics
		if st := job.LastStatus(); st != nil && st.Statistics != nil {
			qs, _ = st.Statistics.Details.(*bq.QueryStatistics)
		}
		if qs == nil || len(qs.Schema) == 0 {
			return nil, "", fmt.Errorf("bigquery: the dry run of the query gave no result schema (only a single SELECT statement can be read)")
		}
		schema, where = qs.Schema, "the query's result"
	} else {
		md, err := s.bq.DatasetInProject(s.table.project, s.table.dataset).Table(s.table.table).Metadata(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("bigquery: table %s: %s", s.table, describeErr(err))
		}
		if md.Type == bq.ViewTable {
			return nil, "", fmt.Errorf("bigquery: %s is a view; the Storage Read API reads tables: use query: SELECT * FROM `%s` instead", s.table, s.table)
		}
		schema, where = md.Schema, "table "+s.table.String()
	}
	names := make([]string, 0, len(schema))
	for _, f := range schema {
		if len(s.columns) == 0 || contains(s.columns, f.Name) {
			names = append(names, f.Name)
		}
	}
	if len(s.columns) > 0 {
		where = "the columns: list read from " + where
	}
	return names, where, nil
}
