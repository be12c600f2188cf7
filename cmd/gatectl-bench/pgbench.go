package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatectl/gatectl/pkg/pgserver"
)

// path is one way to reach the benchmark database: direct, through the
// gateway or through pgbouncer.
type path struct {
	name        string
	host, port  string
	user        string
	sslmode     string
	sslrootcert string // empty unless the path verifies a certificate
	// password returns the path's password: the role's for direct and
	// pgbouncer, a fresh OIDC token for the gateway.
	password func(context.Context) (string, error)
	// cpu reads the CPU time of the proxy in the path; nil for direct.
	cpu cpuClock
}

// libpqEnv is the environment for a libpq client of p. The password goes
// through PGPASSWORD, never the command line, where other users could read
// it.
func (p path) libpqEnv(ctx context.Context) ([]string, error) {
	pw, err := p.password(ctx)
	if err != nil {
		return nil, err
	}
	env := append(pgserver.Environ(), "PGPASSWORD="+pw, "PGSSLMODE="+p.sslmode)
	if p.sslrootcert != "" {
		env = append(env, "PGSSLROOTCERT="+p.sslrootcert)
	}
	return env, nil
}

// pgbenchResult is what one pgbench run reports.
type pgbenchResult struct {
	tps    float64 // without initial connection time
	txns   int64   // transactions actually processed
	failed int64   // failed transactions
	// cpuPerTxn is the proxy's CPU time over the run divided by txns;
	// zero for a path without a proxy.
	cpuPerTxn cpuTime
	// others is where the rest of the machine's time went, when it could
	// be read (Linux).
	others *othersPerTxn
}

// othersPerTxn is the CPU time PostgreSQL and pgbench spent per
// transaction, and the share of the machine's CPU time left idle: with the
// proxy's time, what a path costs the machine, and why its TPS differs.
type othersPerTxn struct {
	server, client time.Duration
	idle           float64 // 0..1
}

// runPgbench runs the select-only built-in script over the extended
// protocol against p for d.
func (b *bench) runPgbench(ctx context.Context, p path, d time.Duration) (pgbenchResult, error) {
	env, err := p.libpqEnv(ctx)
	if err != nil {
		return pgbenchResult{}, err
	}
	cmd := exec.CommandContext(ctx, b.pgbench, "-n", "-S", "-M", "extended",
		"-c", strconv.Itoa(b.opts.clients), "-j", strconv.Itoa(b.opts.threads),
		"-T", strconv.Itoa(int(d/time.Second)),
		"-h", p.host, "-p", p.port, "-U", p.user, benchDB)
	cmd.Env = env
	// Its own process group: a Ctrl-C reaches this program, which then
	// stops pgbench through ctx, rather than pgbench dying mid-report.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var cpu0 cpuTime
	if p.cpu != nil {
		if cpu0, err = p.cpu(); err != nil {
			return pgbenchResult{}, fmt.Errorf("CPU time of %s: %w", p.name, err)
		}
	}
	sys0, sysErr := b.readSystem()
	if err := cmd.Run(); err != nil {
		return pgbenchResult{}, fmt.Errorf("pgbench against %s: %w\n%s", p.name, err, tail(stderr.String(), 10))
	}
	r, err := parsePgbench(stdout.String())
	if err != nil {
		return r, fmt.Errorf("pgbench against %s: %w\n%s", p.name, err, tail(stderr.String(), 10))
	}
	if sys1, err := b.readSystem(); err == nil && sysErr == nil && r.txns > 0 {
		r.others = sys1.since(sys0, cmd.ProcessState, r.txns)
	}
	if p.cpu != nil && r.txns > 0 {
		cpu1, err := p.cpu()
		if err != nil {
			return r, fmt.Errorf("CPU time of %s: %w", p.name, err)
		}
		d := cpu1.sub(cpu0)
		r.cpuPerTxn = cpuTime{d.user / time.Duration(r.txns), d.sys / time.Duration(r.txns)}
	}
	return r, nil
}

// parsePgbench reads TPS, processed and failed transactions from pgbench's
// report. A report without a TPS or processed-transactions line is an error;
// pgbench before version 15 prints no failed-transactions line, which then
// counts as 0.
func parsePgbench(out string) (pgbenchResult, error) {
	var r pgbenchResult
	var haveTPS, haveTxns bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "tps = ") && strings.Contains(line, "without initial connection time"):
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[2], 64)
			if err != nil {
				return r, fmt.Errorf("read pgbench tps line %q: %w", line, err)
			}
			r.tps, haveTPS = v, true
		case strings.HasPrefix(line, "number of transactions actually processed:"):
			v, err := firstInt(strings.TrimPrefix(line, "number of transactions actually processed:"))
			if err != nil {
				return r, fmt.Errorf("read pgbench line %q: %w", line, err)
			}
			r.txns, haveTxns = v, true
		case strings.HasPrefix(line, "number of failed transactions:"):
			v, err := firstInt(strings.TrimPrefix(line, "number of failed transactions:"))
			if err != nil {
				return r, fmt.Errorf("read pgbench line %q: %w", line, err)
			}
			r.failed = v
		}
	}
	if !haveTPS || !haveTxns {
		return r, errors.New("pgbench printed no report (no tps or processed-transactions line)")
	}
	return r, nil
}

// firstInt parses the first field of s, as in " 1234/1234" or " 0 (0.000%)".
func firstInt(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("no number")
	}
	n, _, _ := strings.Cut(f[0], "/")
	return strconv.ParseInt(n, 10, 64)
}
