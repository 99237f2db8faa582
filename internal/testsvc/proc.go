package testsvc

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// freePort finds a loopback port no one listens on, below the kernel's
// ephemeral range (32768 and up on Linux): a server killed and restarted
// on its port must find it free, and a port from that range may meanwhile
// have been handed to an outgoing connection as its local port.
func freePort() (int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// freePorts finds n distinct free loopback ports, as freePort does. They
// are chosen before any server binds one, so a port already chosen still
// looks free: it is skipped, or two servers of one test would get it.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	chosen := make(map[int]bool, n)
	for len(ports) < n {
		port, err := freePortExcept(chosen)
		if err != nil {
			return nil, err
		}
		chosen[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}

// freePortExcept finds a free loopback port between 20000 and 32000 that
// is not in taken.
func freePortExcept(taken map[int]bool) (int, error) {
	for range 200 {
		port := 20000 + mrand.IntN(12000)
		if taken[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken: try another
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free loopback port between 20000 and 32000")
}

// waitListening waits until addr accepts a TCP connection or the process
// exits.
func waitListening(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("server exited before it listened")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening after %v", addr, timeout)
}

// findBinary looks for name on PATH, then in the given directory globs
// (newest version last in sort order wins).
func findBinary(name string, globs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, g := range globs {
		matches, _ := filepath.Glob(filepath.Join(g, name))
		sort.Strings(matches)
		if len(matches) > 0 {
			return matches[len(matches)-1], nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH or in %v; ./test.sh installs it", name, globs)
}

// unprivileged is the account a server that refuses to run as root runs
// as when the tests are root.
type unprivileged struct {
	uid, gid uint32
}

// dropRoot returns the credentials to run a root-refusing server with, or
// nil when the tests do not run as root.
func dropRoot(account string) (*unprivileged, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(account)
	if err != nil {
		return nil, fmt.Errorf("running as root, and no %q account to run the server as: %w", account, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &unprivileged{uid: uint32(uid), gid: uint32(gid)}, nil
}

// command builds cmd to run as who (nil: the current user).
func (who *unprivileged) command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if who != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: who.uid, Gid: who.gid}
	}
	return cmd
}

// chownAll gives who the directory tree at dir.
func (who *unprivileged) chownAll(dir string) error {
	if who == nil {
		return nil
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, int(who.uid), int(who.gid))
	})
}

// stopProcess sends SIGTERM (or sig) and waits up to 10s before SIGKILL.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}, sig syscall.Signal) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}
