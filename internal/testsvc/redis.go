package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Redis is a running redis-server owned by the test binary.
type Redis struct {
	// Addr is its loopback host:port.
	Addr string

	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedis runs redis-server on a free loopback port with persistence
// off and its working directory in a fresh temporary directory.
func StartRedis() (*Redis, error) {
	bin, err := findBinary("redis-server")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "weir-redis")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, exited: make(chan struct{})}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no")
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	if err := r.cmd.Start(); err != nil {
		logFile.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { r.cmd.Wait(); logFile.Close(); close(r.exited) }()
	if err := waitListening(r.Addr, r.exited, 20*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		r.Stop()
		return nil, fmt.Errorf("redis: %w\n%s", err, log)
	}
	return r, nil
}

// Stop shuts the server down and removes its directory.
func (r *Redis) Stop() {
	stopProcess(r.cmd, r.exited, syscall.SIGTERM)
	os.RemoveAll(r.dir)
}
