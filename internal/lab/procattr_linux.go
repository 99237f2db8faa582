package lab

import "syscall"

// childAttr makes the kernel SIGKILL a child (a broker or a worker) when
// the process that started it dies, however it dies: a simulator or lab
// killed with SIGKILL leaves no broker behind on its port.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
