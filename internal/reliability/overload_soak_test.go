//go:build soak

package reliability

import (
	"testing"
	"time"
)

// Overload, full edition: 10,000 tasks created by 64 concurrent clients.
func TestSoakOverload(t *testing.T) {
	rep := runOverload(t, 10_000, 64, 100, 5*time.Minute)
	t.Logf("RESULT overload (soak): %s", rep)
}
