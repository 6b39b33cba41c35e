package pipeline

import "time"

const defaultCheckpointEvery = 2 * time.Second
