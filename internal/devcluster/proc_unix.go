//go:build unix && !linux

package devcluster

import "syscall"

// childAttr puts a node in its own process group, so a Ctrl-C at the
// terminal reaches only `weir cluster up`, which stops the nodes in order.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
