//go:build !linux

package bench

func threadCPU() int64 { return 0 }
