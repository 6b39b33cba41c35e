package state_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/backfillhq/backfill/internal/testkit/s3test"
)

// The S3 store's tests start MinIO; without it they say so in one line.
func TestMain(m *testing.M) { goleak.VerifyTestMain(s3test.Report(m)) }
