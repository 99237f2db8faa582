package testsvc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgBinDirs are where Debian installs PostgreSQL's server binaries, which
// are not on PATH.
var pgBinDirs = []string{"/usr/lib/postgresql/*/bin"}

// Postgres is a running PostgreSQL server owned by the test binary.
type Postgres struct {
	// Port is the loopback TCP port it listens on.
	Port int

	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	logf   string
	next   atomic.Int64
}

// StartPostgres creates a fresh cluster in a temporary directory and runs
// it on a free loopback port, with trust authentication for the user
// "postgres". As root it runs the server as the "postgres" account, since
// PostgreSQL refuses to run as root. fsync is off: tests kill clients,
// never the database server.
func StartPostgres() (*Postgres, error) {
	initdb, err := findBinary("initdb", pgBinDirs...)
	if err != nil {
		return nil, err
	}
	postgres, err := findBinary("postgres", filepath.Dir(initdb))
	if err != nil {
		return nil, err
	}
	who, err := dropRoot("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "weir-pg")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	p := &Postgres{dir: dir, exited: make(chan struct{}), logf: filepath.Join(dir, "server.log")}
	fail := func(err error) (*Postgres, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return fail(err)
	}
	if err := who.chownAll(dir); err != nil {
		return fail(err)
	}
	init := who.command(initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	if out, err := init.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v\n%s", err, out))
	}
	if p.Port, err = freePort(); err != nil {
		return fail(err)
	}
	logFile, err := os.Create(p.logf)
	if err != nil {
		return fail(err)
	}
	p.cmd = who.command(postgres, "-D", data,
		"-p", strconv.Itoa(p.Port), "-h", "127.0.0.1", "-k", dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "wal_level=logical", "-c", "max_replication_slots=10", "-c", "max_wal_senders=10")
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return fail(err)
	}
	go func() { p.cmd.Wait(); logFile.Close(); close(p.exited) }()
	if err := p.waitReady(30 * time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// waitReady waits until the server accepts a query.
func (p *Postgres) waitReady(timeout time.Duration) error {
	if err := waitListening(fmt.Sprintf("127.0.0.1:%d", p.Port), p.exited, timeout); err != nil {
		log, _ := os.ReadFile(p.logf)
		return fmt.Errorf("postgres: %w\n%s", err, log)
	}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, p.DSN("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DSN is the connection string for database db.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// NewDatabase creates an empty database with a unique name and returns its
// connection string.
func (p *Postgres) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d", p.next.Add(1))
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return p.DSN(name), nil
}

// Stop shuts the server down (fast mode) and removes its directory.
func (p *Postgres) Stop() {
	if p.cmd != nil {
		stopProcess(p.cmd, p.exited, syscall.SIGINT)
	}
	os.RemoveAll(p.dir)
}
