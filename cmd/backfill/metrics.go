package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/backfillhq/backfill/pipeline/engine"
)

// runMetrics exposes a run's live counters to Prometheus, so a long
// backfill on Kubernetes can be watched and alerted on.
type runMetrics struct {
	mu       sync.Mutex
	last     engine.Progress
	pipeline string
	descs    map[string]*prometheus.Desc
}

func newRunMetrics(name string) *runMetrics {
	m := &runMetrics{pipeline: name, descs: map[string]*prometheus.Desc{}}
	for _, d := range []struct{ name, help string }{
		{"backfill_rows_read_total", "Rows read from the source."},
		{"backfill_rows_delivered_total", "Rows the sink delivered."},
		{"backfill_rows_rejected_total", "Rows set aside in the dead-letter file."},
		{"backfill_rows_filtered_total", "Rows dropped by filters."},
		{"backfill_rows_unacknowledged", "Rows read that the sink has not acknowledged yet (in flight; after a stop, to be read again)."},
		{"backfill_rows_expected", "Rows this run expects to read (-1: unknown)."},
		{"backfill_splits_done", "Splits finished by this run."},
		{"backfill_splits", "Splits this run reads."},
		{"backfill_checkpoint_save_failures_total", "Periodic checkpoint saves that failed (and were retried)."},
		{"backfill_checkpoint_last_success_timestamp_seconds", "When a checkpoint was last saved (Unix time; 0 before the first)."},
	} {
		m.descs[d.name] = prometheus.NewDesc(d.name, d.help, nil, prometheus.Labels{"pipeline": name})
	}
	m.descs[syncMetric] = prometheus.NewDesc(syncMetric, "Rows of a sync pipeline by what changed since the last acknowledged run "+
		"(added and changed are sent, unchanged filtered; removed: keys gone from the source).", []string{"change"}, prometheus.Labels{"pipeline": name})
	return m
}

// sinkMetrics exposes the sink's own counters (their set depends on the
// sink, so the collector is unchecked: it describes nothing up front).
// backfill_sink_responses_total{code} counts responses by HTTP status
// (code 0: network errors); every other counter is backfill_sink_NAME_total.
// A stat whose name marks it as a gauge (sinkGauge) is backfill_sink_NAME.
type sinkMetrics struct{ m *runMetrics }

func (sinkMetrics) Describe(chan<- *prometheus.Desc) {}

func (s sinkMetrics) Collect(ch chan<- prometheus.Metric) {
	s.m.mu.Lock()
	stats := s.m.last.Sink
	s.m.mu.Unlock()
	labels := prometheus.Labels{"pipeline": s.m.pipeline}
	for _, k := range sortedKeys(stats) {
		if code, ok := strings.CutPrefix(k, "status_"); ok {
			d := prometheus.NewDesc("backfill_sink_responses_total", "Sink responses by HTTP status (0: network errors).",
				[]string{"code"}, labels)
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(stats[k]), code)
			continue
		}
		if sinkGauge(k) {
			d := prometheus.NewDesc("backfill_sink_"+k, "The sink's "+strings.ReplaceAll(k, "_", " ")+" now.", nil, labels)
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(stats[k]))
			continue
		}
		d := prometheus.NewDesc("backfill_sink_"+k+"_total", "The sink's "+strings.ReplaceAll(k, "_", " ")+" counter.", nil, labels)
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(stats[k]))
	}
}

// sinkGauge reports whether a sink stat is a gauge, a level that goes up
// and down, rather than a count: a sink marks one by its name's ending,
// "_per_s" (a rate, e.g. the segment sink's rate_limit_events_per_s) or
// "_now" (a level, e.g. request_max_events_now).
func sinkGauge(name string) bool {
	return strings.HasSuffix(name, "_per_s") || strings.HasSuffix(name, "_now")
}

const syncMetric = "backfill_sync_rows_total"

func (m *runMetrics) update(p engine.Progress) {
	m.mu.Lock()
	m.last = p
	m.mu.Unlock()
}

func (m *runMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
}

func (m *runMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	p := m.last
	m.mu.Unlock()
	counter := func(name string, v int64) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.CounterValue, float64(v))
	}
	gauge := func(name string, v int64) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.GaugeValue, float64(v))
	}
	counter("backfill_rows_read_total", p.Read)
	counter("backfill_rows_delivered_total", p.Delivered)
	counter("backfill_rows_rejected_total", p.Rejected)
	counter("backfill_rows_filtered_total", p.Filtered)
	gauge("backfill_rows_unacknowledged", p.Unacked)
	gauge("backfill_rows_expected", p.TotalRows)
	gauge("backfill_splits_done", int64(p.SplitsDone))
	gauge("backfill_splits", int64(p.SplitsAll))
	counter("backfill_checkpoint_save_failures_total", int64(p.CheckpointSaveFailures))
	if s := p.Sync; s != nil {
		for _, c := range []struct {
			label string
			n     int64
		}{{"added", s.Added}, {"changed", s.Changed}, {"unchanged", s.Unchanged}, {"removed", s.Removed}} {
			ch <- prometheus.MustNewConstMetric(m.descs[syncMetric], prometheus.CounterValue, float64(c.n), c.label)
		}
	}
	var last float64
	if !p.LastCheckpoint.IsZero() {
		last = float64(p.LastCheckpoint.UnixMilli()) / 1e3
	}
	ch <- prometheus.MustNewConstMetric(m.descs["backfill_checkpoint_last_success_timestamp_seconds"], prometheus.GaugeValue, last)
}

// serveMetrics serves /metrics on addr until stop is called (when the run
// is over), and returns the address it listens on.
func serveMetrics(addr string, m *runMetrics, log *slog.Logger) (_ string, stop func(), _ error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, sinkMetrics{m}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return ln.Addr().String(), func() {
		srv.Close() // the listener and every connection
		<-served
	}, nil
}
