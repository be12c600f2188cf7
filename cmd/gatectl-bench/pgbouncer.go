package main

import (
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
	"syscall"
	"time"
)

// pgbouncerStartTimeout bounds the wait for pgbouncer to accept connections.
const pgbouncerStartTimeout = 15 * time.Second

// pgbouncer is a running pgbouncer in session pooling mode in front of the
// upstream, with its config in a directory of the run.
type pgbouncer struct {
	addr string
	cmd  *exec.Cmd
	out  string        // its log file
	done chan struct{} // closed when the process has exited
	err  error         // the process's exit, valid after done
}

// pgbouncerConfig is pgbouncer.ini for a session pool of database benchDB
// at upstream, listening on 127.0.0.1:port, authenticating clients with
// SCRAM against userlist.txt beside it. Neither side uses TLS, like the
// direct path.
func pgbouncerConfig(dir, upstream string, port int) (string, error) {
	host, upPort, err := net.SplitHostPort(upstream)
	if err != nil {
		return "", fmt.Errorf("upstream address %q: %w", upstream, err)
	}
	return fmt.Sprintf(`[databases]
%s = host=%s port=%s dbname=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = session
max_client_conn = 200
default_pool_size = 50
server_tls_sslmode = disable
pidfile = %s
`, benchDB, host, upPort, benchDB, port, filepath.Join(dir, "userlist.txt"), filepath.Join(dir, "pgbouncer.pid")), nil
}

// userlistLine is one auth_file line: user and password, each in double
// quotes, a double quote inside doubled.
func userlistLine(user, password string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	return q(user) + " " + q(password) + "\n"
}

// startPgbouncer writes the config into dir and starts bin in the
// foreground, as the postgres OS user when this process is root (pgbouncer
// refuses root). It returns once pgbouncer accepts TCP connections.
func startPgbouncer(ctx context.Context, bin, dir, upstream, user, password string) (*pgbouncer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf, err := pgbouncerConfig(dir, upstream, port)
	if err != nil {
		return nil, err
	}
	owner, err := pgbouncerOwner()
	if err != nil {
		return nil, err
	}
	ini := filepath.Join(dir, "pgbouncer.ini")
	files := []struct {
		path string
		data string
	}{{ini, conf}, {filepath.Join(dir, "userlist.txt"), userlistLine(user, password)}}
	for _, f := range files {
		if err := writeOwned(f.path, []byte(f.data), owner); err != nil {
			return nil, fmt.Errorf("write %s: %w", filepath.Base(f.path), err)
		}
	}
	if err := chown(dir, owner); err != nil {
		return nil, err
	}

	outPath := filepath.Join(dir, "pgbouncer.log")
	out, err := os.Create(outPath)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, ini)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so a Ctrl-C reaches only this program, which
	// then stops pgbouncer in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if owner != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(owner.uid), Gid: uint32(owner.gid)}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	p := &pgbouncer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, out: outPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	if err := p.waitReady(ctx); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// waitReady waits until pgbouncer accepts a TCP connection, it exits, ctx
// ends or pgbouncerStartTimeout passes.
func (p *pgbouncer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pgbouncerStartTimeout)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", p.addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("pgbouncer exited at start (%v):\n%s", p.err, p.logTail())
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("pgbouncer did not listen on %s within %s:\n%s", p.addr, pgbouncerStartTimeout, p.logTail())
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop shuts pgbouncer down (SIGTERM is an immediate shutdown) and waits
// for it; it kills it if it has not exited after ten seconds.
func (p *pgbouncer) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop pgbouncer: %w", err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return errors.New("pgbouncer ignored SIGTERM for 10s and was killed")
	}
}

func (p *pgbouncer) logTail() string {
	b, _ := os.ReadFile(p.out)
	return tail(string(b), 10)
}

// osUser is a numeric OS identity.
type osUser struct{ uid, gid int }

// pgbouncerOwner is the OS user pgbouncer runs as: nil for this process's
// own user, postgres when this process is root.
func pgbouncerOwner() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("pgbouncer refuses to run as root and there is no postgres OS user to run it as; install the postgresql package (`make deps`)")
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("postgres user id %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("postgres group id %q: %w", u.Gid, err)
	}
	return &osUser{uid: uid, gid: gid}, nil
}

// writeOwned writes a file only its owner (owner, when not nil) can read:
// the userlist holds a password.
func writeOwned(path string, data []byte, owner *osUser) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return chown(path, owner)
}

func chown(path string, owner *osUser) error {
	if owner == nil {
		return nil
	}
	if err := os.Chown(path, owner.uid, owner.gid); err != nil {
		return fmt.Errorf("hand %s to the postgres user: %w", path, err)
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
