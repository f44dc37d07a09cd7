package metrics

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine running (a
// periodic reader not shut down, say).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
