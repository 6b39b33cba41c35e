// Package pipeline holds the contracts between backfill's parts: a Source
// lists Splits and opens each as a RecordReader of Batches; Transforms
// rewrite Batches; a Sink delivers them and reports, through each Batch's
// Account, what became of every row (delivered, or dead-lettered), then
// acks the batch. Env is what a plugin constructor gets.
//
// The config language is in pipeline/config, the engine that runs a
// pipeline in pipeline/engine, what a run keeps in pipeline/state;
// pipeline/DESIGN.md says why they are shaped so.
package pipeline
