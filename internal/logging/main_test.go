package logging

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops what it starts: export workers and level-revert timers
// included.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
