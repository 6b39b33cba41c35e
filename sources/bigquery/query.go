package bigquery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	bq "cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
)

// queryResult returns the table holding the query's result: the stored
// job's when it is still there (a resumed run does not run the query
// again, nor pay for it), else a new job's.
func (s *Source) queryResult(ctx context.Context) (tableRef, error) {
	if id := s.get(keyJobID); id != "" {
		job, err := s.bq.JobFromIDLocation(ctx, id, s.get(keyJobLocation))
		switch {
		case isNotFound(err):
			s.warn("the stored query job is gone; running the query again", "job", id)
		case err != nil:
			return tableRef{}, fmt.Errorf("bigquery: looking up query job %s: %s", id, describeErr(err))
		default:
			ref, err := s.jobDestination(ctx, job)
			if err != nil {
				return tableRef{}, err
			}
			err = s.checkTable(ctx, ref)
			if err == nil {
				s.info("reusing the result of query job", "job", id, "table", ref.String())
				return ref, nil
			}
			if !isNotFound(err) {
				return tableRef{}, err
			}
			// Anonymous result tables live about 24 hours.
			s.warn("the result table of the stored query job expired; running the query again", "job", id, "table", ref.String())
		}
		// A new result table means new streams: drop the old session.
		for _, k := range []string{keySession, keySessionKey, keySessionExpire, keyStreams} {
			s.env.State.Set(k, "")
		}
	}
	q := s.bq.Query(s.query)
	q.Parameters = s.params
	q.JobID = jobID(s.env.Name)
	if s.location != "" {
		q.Location = s.location
	}
	job, err := q.Run(ctx)
	if err != nil {
		return tableRef{}, fmt.Errorf("bigquery: starting the query: %s", describeErr(err))
	}
	// Saved before waiting, so a run interrupted meanwhile (or killed)
	// picks up the same job instead of billing the query again.
	s.env.State.Set(keyJobID, job.ID())
	s.env.State.Set(keyJobLocation, job.Location())
	s.info("query job started", "job", job.ID(), "location", job.Location())
	if err := s.env.State.Save(ctx); err != nil {
		s.warn("could not save the query job's id before waiting for it; a rerun may run the query again", "job", job.ID(), "error", err)
	}
	return s.jobDestination(ctx, job)
}

// jobDestination waits for a query job and returns its result table.
func (s *Source) jobDestination(ctx context.Context, job *bq.Job) (tableRef, error) {
	st, err := job.Wait(ctx)
	if err != nil && ctx.Err() != nil {
		// Stopped while waiting: the job's id is saved, a rerun picks it up.
		return tableRef{}, fmt.Errorf("bigquery: waiting for query job %s: %w", job.ID(), ctx.Err())
	}
	if err == nil {
		err = st.Err()
	}
	if err != nil {
		return tableRef{}, fmt.Errorf("bigquery: query job %s failed: %s", job.ID(), describeQueryErr(err))
	}
	cfg, err := job.Config()
	if err != nil {
		return tableRef{}, fmt.Errorf("bigquery: query job %s: %v", job.ID(), err)
	}
	qc, ok := cfg.(*bq.QueryConfig)
	if !ok || qc.Dst == nil {
		return tableRef{}, fmt.Errorf("bigquery: job %s has no result table (only a single SELECT statement can be read, not a script or DML)", job.ID())
	}
	return tableRef{project: qc.Dst.ProjectID, dataset: qc.Dst.DatasetID, table: qc.Dst.TableID}, nil
}

// describeQueryErr keeps BigQuery's message, which names the error's
// position ("... at [3:14]").
func describeQueryErr(err error) string {
	var be *bq.Error
	if errors.As(err, &be) {
		msg := be.Message
		if be.Reason != "" {
			msg = be.Reason + ": " + msg
		}
		if be.Location != "" && be.Location != "query" {
			msg += " (at " + be.Location + ")"
		}
		return msg
	}
	var mult bq.MultiError
	if errors.As(err, &mult) && len(mult) > 0 {
		return describeQueryErr(mult[0])
	}
	return describeErr(err)
}

func isNotFound(err error) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == http.StatusNotFound
}

// jobID names a query job after the pipeline, so it can be found in the
// console; the random part keeps reruns distinct.
func jobID(pipeline string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	clean := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, pipeline)
	return "backfill_" + clean + "_" + hex.EncodeToString(b[:])
}
