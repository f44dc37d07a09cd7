//go:build !race

package observe_test

// raceEnabled: under the race detector every request costs several times
// more, so the reliability tests size their work by it.
const raceEnabled = false
