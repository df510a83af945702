//go:build !linux

package registry

import "os/exec"

func setProcAttr(*exec.Cmd) {}
