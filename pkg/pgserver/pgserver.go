// Package pgserver runs a throwaway PostgreSQL server on loopback in a
// temporary directory, for `gatectl demo`, tests and benchmarks. It uses the
// initdb and pg_ctl of an installed PostgreSQL and, when run as root, runs
// the server as the `postgres` OS user, because PostgreSQL refuses root.
package pgserver

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options configures Start.
type Options struct {
	// HBA lines are put before the default rules of pg_hba.conf, e.g.
	// "host all md5user 127.0.0.1/32 md5".
	HBA []string
	// Settings are extra postgresql.conf lines; they come after the ones
	// Start writes, so they override them.
	Settings []string
	// SSL turns on TLS with a throwaway CA made for this server: its
	// certificate is valid for 127.0.0.1 and localhost, and Server.CACertPEM
	// and Server.CertPool let clients verify it. The default pg_hba.conf
	// rules accept TCP logins with and without TLS; add hostnossl … reject
	// lines to HBA to require it.
	SSL bool
}

// Server is a running throwaway PostgreSQL. The superuser "postgres"
// connects without a password over the Unix socket in SocketDir; TCP on
// 127.0.0.1:Port requires a password (scram-sha-256) unless HBA says
// otherwise.
type Server struct {
	Dir       string // removed by Stop
	SocketDir string
	Port      int
	Version   string // major version, e.g. "15"
	// CACertPEM is the PEM certificate of the CA that signed the server's
	// certificate when Options.SSL is set; nil otherwise.
	CACertPEM []byte

	bin   string
	owner *user.User        // non-nil when the server runs as another OS user
	ca    *x509.Certificate // parsed CACertPEM
}

// Installed reports whether a PostgreSQL server installation was found, and
// where its binaries are.
func Installed() (bin string, ok bool) {
	bin, err := findBin()
	return bin, err == nil
}

// findBin finds the directory holding initdb, pg_ctl and postgres: the
// newest /usr/lib/postgresql/<major>/bin, or initdb on PATH.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server found (initdb); install it with `make deps` or `apt-get install postgresql`")
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start creates a new cluster in a fresh temporary directory and starts it.
// The caller must Stop it.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	reapOrphans(sharedBase(), bin)
	dir, err := MkdirShared("gatectl-pg-")
	if err != nil {
		return nil, fmt.Errorf("create PostgreSQL directory: %w", err)
	}
	s := &Server{Dir: dir, SocketDir: filepath.Join(dir, "sock"), bin: bin, Version: strconv.Itoa(majorOf(bin))}
	if err := s.writeOwner(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.start(ctx, opts); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, opts Options) error {
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(s.SocketDir, 0o755); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		u, err := serverOwner()
		if err != nil {
			return err
		}
		s.owner = u
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{s.Dir, s.SocketDir} {
			if err := os.Chown(p, uid, gid); err != nil {
				return fmt.Errorf("hand %s to the postgres user: %w", p, err)
			}
		}
	}
	data := filepath.Join(s.Dir, "data")
	if out, err := s.run(ctx, "initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--no-sync",
		"--auth-local=trust", "--auth-host=scram-sha-256"); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	var hba bytes.Buffer
	hba.WriteString("# written by gatectl pgserver\n")
	for _, l := range opts.HBA {
		hba.WriteString(l + "\n")
	}
	hba.WriteString("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n")
	if err := s.writeOwned(filepath.Join(data, "pg_hba.conf"), hba.Bytes()); err != nil {
		return err
	}
	var sslConf []string
	if opts.SSL {
		var err error
		if sslConf, err = s.setupSSL(data); err != nil {
			return err
		}
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		conf := []string{
			"listen_addresses = '127.0.0.1'",
			"port = " + strconv.Itoa(port),
			"unix_socket_directories = '" + s.SocketDir + "'",
			"fsync = off", "synchronous_commit = off", "full_page_writes = off",
			"max_connections = 200",
			"password_encryption = 'scram-sha-256'",
		}
		conf = append(conf, sslConf...)
		conf = append(conf, opts.Settings...)
		if err := s.writeOwned(filepath.Join(data, "postgresql.auto.conf"), []byte(strings.Join(conf, "\n")+"\n")); err != nil {
			return err
		}
		out, err := s.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(s.Dir, "server.log"), "-w", "-t", "60", "start")
		if err == nil {
			s.Port = port
			return nil
		}
		log, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
		lastErr = fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
		// Another process may have taken the port between freePort and the
		// server's bind; try a new one.
	}
	return lastErr
}

// Addr is the server's TCP address.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// SuperuserDSN is a libpq keyword/value connection string for the superuser
// over the Unix socket.
func (s *Server) SuperuserDSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", s.SocketDir, s.Port, db)
}

// Psql runs SQL as the superuser with psql and returns its unaligned,
// tuples-only output. It stops at the first error.
func (s *Server) Psql(ctx context.Context, db, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, s.tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", s.SocketDir, "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", db)
	cmd.Env = Environ()
	cmd.Stdin = strings.NewReader(sql)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("psql: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() error {
	var err error
	data := filepath.Join(s.Dir, "data")
	if s.Port != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if out, e := s.run(ctx, "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"); e != nil {
			err = fmt.Errorf("pg_ctl stop: %w\n%s", e, out)
		}
	}
	if e := os.RemoveAll(s.Dir); e != nil && err == nil {
		err = e
	}
	return err
}

// tool returns the path of a PostgreSQL program: from the server's bin dir,
// falling back to PATH (psql lives in the client package).
func (s *Server) tool(name string) string {
	p := filepath.Join(s.bin, name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return name
}

// run runs a server program as the server's OS user.
func (s *Server) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, s.tool(name), args...)
	cmd.Dir = s.Dir
	// pg_ctl forks the postmaster; give it its own process group so a
	// Ctrl-C meant for gatectl does not reach it before Stop runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = Environ()
	if s.owner != nil {
		uid, _ := strconv.ParseUint(s.owner.Uid, 10, 32)
		gid, _ := strconv.ParseUint(s.owner.Gid, 10, 32)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		cmd.Env = append(cmd.Env, "HOME="+s.Dir)
	}
	// pg_ctl keeps the postmaster's output pipes open if we capture them
	// through os/exec's pipes; use a file instead.
	f, err := os.CreateTemp("", "gatectl-pg-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return out, err
}

// MkdirShared creates a new temporary directory that the postgres OS user
// can reach: as root, servers (PostgreSQL, pgbouncer) run as that user, and
// test temp dirs (and testscript's TMPDIR) are 0700 and owned by root, so it
// falls back to /tmp for those.
func MkdirShared(prefix string) (string, error) {
	return os.MkdirTemp(sharedBase(), prefix)
}

func sharedBase() string {
	base := os.TempDir()
	if os.Geteuid() == 0 && !traversable(base) {
		base = "/tmp"
	}
	return base
}

// serverOwner is the OS user that runs the server when we are root.
func serverOwner() (*user.User, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root needs the `postgres` OS user to run PostgreSQL; install the postgresql package (`make deps`)")
	}
	return u, nil
}

// Environ is the process environment without libpq's PG* variables, which
// are meant for other servers (an empty PGPORT even breaks initdb): use it
// for PostgreSQL programs run against a throwaway server.
func Environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *Server) writeOwned(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	if s.owner != nil {
		uid, _ := strconv.Atoi(s.owner.Uid)
		gid, _ := strconv.Atoi(s.owner.Gid)
		return os.Chown(path, uid, gid)
	}
	return nil
}

// traversable reports whether every directory from / to dir lets other
// users through (the execute bit for others).
func traversable(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		st, err := os.Stat(dir)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
