package config

import "time"

const defaultCheckpointEvery = 2 * time.Second

// defaultCheckpointFailureTimeout is how long periodic saves may fail
// before the run stops: long enough to ride out an S3 blip or a credential
// refresh, short enough that a rerun resends little.
const defaultCheckpointFailureTimeout = 5 * time.Minute
