package engine

import (
	"testing"

	"go.uber.org/goleak"
)

// A run starts workers, read-ahead readers, a ticker and a grace timer:
// every one of them ends before Run returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
