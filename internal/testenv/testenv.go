// Package testenv starts throwaway backends for tests: a PostgreSQL cluster
// and a redis-server, each on a free loopback port, in a temporary directory
// that Stop removes. Nothing here is used outside tests.
//
// Whether a missing backend skips or fails is the caller's choice: make
// test sets BERTH_TEST_POSTGRES=1 and BERTH_TEST_REDIS=1, and Require turns
// a missing backend into a failure then.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Required reports whether the switch env is set to 1: then a backend that
// cannot be started is a failure, not a skip.
func Required(env string) bool { return os.Getenv(env) == "1" }

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Postgres is a throwaway PostgreSQL cluster.
type Postgres struct {
	Dir  string
	Port int
	bin  string
	run  func(name string, args ...string) *exec.Cmd
}

// URL returns the connection URL of database db (as the superuser postgres).
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// pgBin finds the directory of initdb and pg_ctl.
func pgBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", errors.New("no PostgreSQL server binaries (pg_ctl) found; apt-get install postgresql")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// StartPostgres initialises and starts a cluster with fsync off, listening
// on 127.0.0.1 only, trusting local connections. As root it runs the server
// as the user postgres, which PostgreSQL requires.
func StartPostgres() (*Postgres, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "berth-pg-")
	if err != nil {
		return nil, err
	}
	p := &Postgres{Dir: dir, bin: bin, run: exec.Command}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs the user postgres: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		p.run = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		}
	}
	if err := p.exec(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		p.Port = port
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300", port, dir)
		err = p.exec(filepath.Join(bin, "pg_ctl"), "-D", filepath.Join(dir, "data"), "-o", opts,
			"-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start")
		if err == nil {
			return p, nil
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%w\n%s", err, log)
		}
	}
}

func (p *Postgres) exec(name string, args ...string) error {
	cmd := p.run(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return nil
}

// Stop stops the server (immediate mode) and removes its directory.
func (p *Postgres) Stop() error {
	err := p.exec(filepath.Join(p.bin, "pg_ctl"), "-D", filepath.Join(p.Dir, "data"), "-m", "immediate", "-w", "stop")
	return errors.Join(err, os.RemoveAll(p.Dir))
}

// Redis is a throwaway redis-server without persistence.
type Redis struct {
	Dir  string
	Port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Addr returns host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL returns the redis:// URL of database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// StartRedis starts redis-server in the foreground of a child process and
// waits until it answers PING.
func StartRedis() (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("no redis-server on PATH; apt-get install redis-server")
	}
	dir, err := os.MkdirTemp("", "berth-redis-")
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		r := &Redis{Dir: dir, Port: port, done: make(chan struct{})}
		var out bytes.Buffer
		r.cmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no", "--protected-mode", "no")
		r.cmd.Stdout, r.cmd.Stderr = &out, &out
		if err := r.cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		go func() { _ = r.cmd.Wait(); close(r.done) }()
		if r.wait(10 * time.Second) {
			return r, nil
		}
		_ = r.cmd.Process.Kill()
		<-r.done
		if attempt == 2 {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("redis-server did not answer on port %d:\n%s", port, out.String())
		}
	}
}

func (r *Redis) wait(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return false
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", r.Addr())
		cancel()
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(time.Second))
			_, _ = conn.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			n, _ := conn.Read(buf)
			conn.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Stop kills the server and removes its directory.
func (r *Redis) Stop() error {
	_ = r.cmd.Process.Kill()
	<-r.done
	return os.RemoveAll(r.Dir)
}
