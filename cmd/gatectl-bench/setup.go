package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/gatectl/gatectl/pkg/demo"
	"github.com/gatectl/gatectl/pkg/pgserver"
)

// benchDB is the database, and the gateway target, every path reaches.
const benchDB = "orders"

// benchUser is the upstream role of the direct and pgbouncer paths: the
// role whose credential the gateway injects for a read grant, so all paths
// run as the same database user.
const benchUser = "orders_ro"

// benchSubject is the dev-token subject of the gateway path: the etl
// service account, which has a read grant on the orders target.
const benchSubject = "etl"

// bench is a prepared environment: the demo, pgbench's tables, and
// pgbouncer when installed.
type bench struct {
	opts    options
	log     *slog.Logger
	env     *demo.Env
	tmp     string // pgbouncer's files; removed by close
	pgbench string // the pgbench binary
	paths   []path // direct, gateway and, unless skipped, pgbouncer
	bouncer *pgbouncer
	// skipped says why pgbouncer is not measured; empty when it is.
	skipped string
	// server reads the CPU time of the PostgreSQL server; nil where it
	// cannot be read.
	server cpuClock
}

// setup starts everything the measurements need. The returned bench is
// non-nil whenever something was started, even with an error: the caller
// must close it.
func setup(ctx context.Context, opts options, logger *slog.Logger, stderr io.Writer) (*bench, error) {
	pgbenchBin, err := findPgbench()
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(stderr, "starting a throwaway PostgreSQL and a --dev gateway…")
	dopts := demo.Options{ListenAPI: "127.0.0.1:0", ListenPostgres: "127.0.0.1:0", Logger: logger}
	if opts.statementCache >= 0 {
		dopts.StatementCache = &opts.statementCache
	}
	env, err := demo.Start(ctx, dopts)
	if err != nil {
		return nil, fmt.Errorf("start the demo environment: %w", err)
	}
	b := &bench{opts: opts, log: logger, env: env, pgbench: pgbenchBin}
	if pid, err := postmasterPID(filepath.Join(env.PG.Dir, "data")); err == nil {
		b.server = serverCPU(pid)
	}
	if b.tmp, err = tempDir(); err != nil {
		return b, err
	}
	// demo.Start put the role passwords in this process's environment,
	// where the gateway reads its credentials from too.
	roPassword := os.Getenv("ORDERS_RO_PASSWORD")
	if roPassword == "" {
		return b, errors.New("the demo set no ORDERS_RO_PASSWORD; pkg/demo must set the role passwords in the environment")
	}

	fmt.Fprintf(stderr, "creating pgbench tables at scale %d…\n", opts.scale)
	if err := b.initPgbench(ctx); err != nil {
		return b, err
	}

	tokens, err := newTokenSource(env.Ready.API, env.Ready.CAFile)
	if err != nil {
		return b, err
	}
	upHost, upPort, err := net.SplitHostPort(env.PG.Addr())
	if err != nil {
		return b, fmt.Errorf("upstream address %q: %w", env.PG.Addr(), err)
	}
	gwHost, gwPort, err := net.SplitHostPort(env.Ready.Postgres)
	if err != nil {
		return b, fmt.Errorf("gateway PostgreSQL address %q: %w", env.Ready.Postgres, err)
	}
	staticPassword := func(context.Context) (string, error) { return roPassword, nil }
	b.paths = []path{
		{name: "direct", host: upHost, port: upPort, user: benchUser, sslmode: "disable", password: staticPassword},
		{name: "gateway", host: gwHost, port: gwPort, user: benchSubject, sslmode: opts.sslmode, sslrootcert: env.Ready.CAFile,
			password: func(ctx context.Context) (string, error) { return tokens.mint(ctx, benchSubject) }, cpu: selfCPU},
	}

	if _, err := os.Stat(opts.pgbouncer); err != nil {
		b.skipped = fmt.Sprintf("%s not found (install the Debian package pgbouncer, e.g. with `make deps`)", opts.pgbouncer)
		fmt.Fprintln(stderr, "pgbouncer skipped:", b.skipped)
		return b, nil
	}
	fmt.Fprintln(stderr, "starting pgbouncer (session pooling)…")
	b.bouncer, err = startPgbouncer(ctx, opts.pgbouncer, b.tmp, env.PG.Addr(), benchUser, roPassword)
	if err != nil {
		return b, err
	}
	bHost, bPort, _ := net.SplitHostPort(b.bouncer.addr)
	b.paths = append(b.paths, path{name: "pgbouncer", host: bHost, port: bPort, user: benchUser, sslmode: "disable", password: staticPassword,
		cpu: procCPU(b.bouncer.cmd.Process.Pid)})
	return b, nil
}

// initPgbench creates pgbench's tables on the upstream as the superuser
// over the Unix socket and lets the benchmark role read them.
func (b *bench) initPgbench(ctx context.Context) error {
	pg := b.env.PG
	cmd := exec.CommandContext(ctx, b.pgbench, "-i", "-q", "-s", fmt.Sprint(b.opts.scale),
		"-h", pg.SocketDir, "-p", fmt.Sprint(pg.Port), "-U", "postgres", benchDB)
	cmd.Env = pgserver.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %w\n%s", err, tail(string(out), 10))
	}
	grant := "GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO " + benchUser + ";"
	if _, err := pg.Psql(ctx, benchDB, grant); err != nil {
		return fmt.Errorf("grant the pgbench tables to %s: %w", benchUser, err)
	}
	return nil
}

// close stops pgbouncer, the gateway and PostgreSQL, and removes the
// temporary files, in that order.
func (b *bench) close() error {
	var errs []error
	if b.bouncer != nil {
		errs = append(errs, b.bouncer.stop())
	}
	if b.env != nil {
		errs = append(errs, b.env.Stop())
	}
	if b.tmp != "" {
		errs = append(errs, os.RemoveAll(b.tmp))
	}
	return errors.Join(errs...)
}

// findPgbench finds pgbench beside the PostgreSQL server binaries or on
// PATH.
func findPgbench() (string, error) {
	if bin, ok := pgserver.Installed(); ok {
		p := filepath.Join(bin, "pgbench")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("pgbench")
	if err != nil {
		return "", errors.New("pgbench not found; install PostgreSQL with `make deps` (Debian packages postgresql and postgresql-client)")
	}
	return p, nil
}

// newHTTPClient trusts the gateway's dev CA.
func newHTTPClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read the gateway CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the gateway CA %s holds no PEM certificate", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// tempDir creates the run's temporary directory, reachable by the postgres
// OS user that runs pgbouncer when we are root.
func tempDir() (string, error) {
	dir, err := pgserver.MkdirShared("gatectl-bench-")
	if err != nil {
		return "", fmt.Errorf("create a temporary directory: %w", err)
	}
	return dir, nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
