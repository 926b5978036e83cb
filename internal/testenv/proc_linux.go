package testenv

import (
	"os/exec"
	"syscall"
)

// setProcAttrs makes the kernel kill the server if the test process dies
// without running its cleanups (e.g. a test timeout panic).
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
