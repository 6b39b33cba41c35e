// Package pipeline is backfill's engine: the plugin contracts (Source,
// Transform, Sink), the typed config specs plugins declare, the registry,
// config loading and validation, the runner with its acknowledgement
// tracking, the checkpoint store, dead letters and progress reporting.
//
// Data flows one way: a Source lists Splits and opens each as a
// RecordReader of Batches; Transforms rewrite Batches; the Sink delivers
// them and calls Batch.Ack once every row is durable (delivered or
// dead-lettered). Only acknowledged rows ever reach the checkpoint.
package pipeline
