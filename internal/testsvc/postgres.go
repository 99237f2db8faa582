package testsvc

import (
	"context"
	"errors"
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

	dir      string // owned by the test; removed by Stop
	data     string // the data directory, under dir
	postgres string // the server binary
	who      *unprivileged
	cmd      *exec.Cmd
	exited   chan struct{}
	logf     string
	next     atomic.Int64
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
	p, err := newPostgres(filepath.Dir(initdb))
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(p.data, 0o700); err != nil {
		return p.fail(err)
	}
	if err := p.who.chownAll(p.dir); err != nil {
		return p.fail(err)
	}
	init := p.who.command(initdb, "-D", p.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	if out, err := init.CombinedOutput(); err != nil {
		return p.fail(fmt.Errorf("initdb: %v\n%s", err, out))
	}
	if err := p.Start(); err != nil {
		return p.fail(err)
	}
	return p, nil
}

// newPostgres prepares the directory of a server whose binaries are in
// bin; the data directory is not created yet.
func newPostgres(bin string) (*Postgres, error) {
	postgres, err := findBinary("postgres", bin)
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
		os.RemoveAll(dir)
		return nil, err
	}
	return &Postgres{dir: dir, data: filepath.Join(dir, "data"), postgres: postgres, who: who, logf: filepath.Join(dir, "server.log")}, nil
}

func (p *Postgres) fail(err error) (*Postgres, error) {
	os.RemoveAll(p.dir)
	return nil, err
}

// Start runs the server on its data directory: on its port again after
// Halt, on a free one the first time.
func (p *Postgres) Start() error {
	if p.Port == 0 {
		port, err := freePort()
		if err != nil {
			return err
		}
		p.Port = port
	}
	logFile, err := os.OpenFile(p.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.exited = make(chan struct{})
	p.cmd = p.who.command(p.postgres, "-D", p.data,
		"-p", strconv.Itoa(p.Port), "-h", "127.0.0.1", "-k", p.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "wal_level=logical", "-c", "max_replication_slots=40", "-c", "max_wal_senders=10")
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	exited := p.exited
	cmd := p.cmd
	go func() { cmd.Wait(); logFile.Close(); close(exited) }()
	if err := p.waitReady(30 * time.Second); err != nil {
		p.Halt()
		return err
	}
	return nil
}

// Halt shuts the server down (fast mode: a clean shutdown with a
// checkpoint) and keeps its directory, for Start or Copy.
func (p *Postgres) Halt() {
	if p.cmd != nil {
		stopProcess(p.cmd, p.exited, syscall.SIGINT)
		p.cmd = nil
	}
}

// Copy copies the data directory of a halted server, as a file-system
// level backup does (PostgreSQL's docs, "File System Level Backup"):
// replication slots included. The copy is not started.
func (p *Postgres) Copy() (*Postgres, error) {
	c, err := newPostgres(filepath.Dir(p.postgres))
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("cp", "-a", p.data, c.data).CombinedOutput(); err != nil {
		return c.fail(fmt.Errorf("copy data directory: %v\n%s", err, out))
	}
	if err := c.who.chownAll(c.dir); err != nil {
		return c.fail(err)
	}
	return c, nil
}

// BaseBackup takes a base backup of the running server with pg_basebackup,
// its WAL streamed along; pg_basebackup leaves replication slots out. With
// standby, the backup is configured to follow this server as a streaming
// standby (-R). The backup is not started.
func (p *Postgres) BaseBackup(standby bool) (*Postgres, error) {
	bin, err := findBinary("pg_basebackup", filepath.Dir(p.postgres))
	if err != nil {
		return nil, err
	}
	c, err := newPostgres(filepath.Dir(p.postgres))
	if err != nil {
		return nil, err
	}
	if err := c.who.chownAll(c.dir); err != nil {
		return c.fail(err)
	}
	args := []string{"-D", c.data, "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres", "-X", "stream", "-c", "fast", "--no-sync"}
	if standby {
		args = append(args, "-R")
	}
	if out, err := c.who.command(bin, args...).CombinedOutput(); err != nil {
		return c.fail(fmt.Errorf("pg_basebackup: %v\n%s", err, out))
	}
	return c, nil
}

// Promote ends the recovery of a standby (pg_promote) and waits until it
// accepts writes.
func (p *Postgres) Promote(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_promote(true, 60)`).Scan(&ok); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if !ok {
		return errors.New("promote: not promoted within 60 seconds")
	}
	return nil
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
	p.Halt()
	os.RemoveAll(p.dir)
}
