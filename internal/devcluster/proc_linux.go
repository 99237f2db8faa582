package devcluster

import "syscall"

// childAttr puts a node in its own process group, so a Ctrl-C at the
// terminal reaches only `weir cluster up`, which stops the nodes in
// order; and asks the kernel to send the node SIGTERM should the parent
// die without stopping it (killed with SIGKILL), so no node outlives it.
// The kernel ties that signal to the thread that started the child; Go
// ends a thread only when a goroutine locked to it exits, which none here
// does.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
