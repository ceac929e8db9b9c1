//go:build linux

package azurite

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startProcess starts cmd in its own process group, so killProcess reaches Azurite's
// children too, and with SIGKILL as parent-death signal, so a test binary that dies
// (timeout panic, ^C) does not leave Azurite running. The signal fires when the
// creating OS thread ends, so the start happens on a locked thread that lives until
// release is called.
func startProcess(cmd *exec.Cmd) (release func(), err error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	errc := make(chan error)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		errc <- cmd.Start()
		<-done
	}()
	if err := <-errc; err != nil {
		close(done)
		return nil, err
	}
	return func() { close(done) }, nil
}

// killProcess signals cmd's whole process group.
func killProcess(cmd *exec.Cmd, force bool) {
	sig := syscall.SIGTERM
	if force {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}
