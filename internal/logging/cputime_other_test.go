//go:build !linux

package logging

func threadCPU() int64 { return 0 }
