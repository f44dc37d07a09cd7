package testbackend

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the backend die with the test binary, even when the
// test is killed before its cleanup runs.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
