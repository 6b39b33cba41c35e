// Package state keeps what a run leaves behind: the checkpoint (per split,
// the rows acknowledged; the source's own small state; the account of the
// rows it covers), the stores that hold it (a local directory, S3), the
// lock that stops two runs of one pipeline shard overlapping, and the
// dead-letter file with its copies beside a remote checkpoint.
//
// Each has a null form for a preview, which keeps nothing: a run is the same
// code whether it saves or not.
package state
