//go:build !race

package integration

// raceEnabled: under the race detector every request costs several times
// more, so the reliability tests size their work by it.
const raceEnabled = false
