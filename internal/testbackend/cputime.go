package testbackend

import (
	"syscall"
	"time"
)

// ProcessCPU returns the CPU time (user and system) the whole process has
// used so far, or 0 where it cannot be read: benchmarks report it per
// operation (cpu-ns/op), a steadier figure than wall time on a shared
// machine, and it includes the work of background goroutines (a profiler's
// signals and encoding, an exporter) that ns/op of one goroutine misses.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
