//go:build linux

package logging

import "syscall"

// threadCPU returns the CPU time the calling OS thread has used, in
// nanoseconds: unlike wall time, it does not count the time the thread
// waited for a CPU, so it stays meaningful on a loaded machine.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
