//go:build !linux

package azurite

import "os/exec"

func startProcess(cmd *exec.Cmd) (release func(), err error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() {}, nil
}

func killProcess(cmd *exec.Cmd, _ bool) { _ = cmd.Process.Kill() }
