//go:build !linux

package testbackend

import "os/exec"

// dieWithParent is Linux-only; elsewhere the test's cleanup stops the backend.
func dieWithParent(*exec.Cmd) {}
