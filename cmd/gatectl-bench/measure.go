package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// measure runs the warm-up, the interleaved pgbench rounds and the
// interleaved stream rounds, with progress on stderr, then writes the
// report to stdout.
func (b *bench) measure(ctx context.Context, stdout, stderr io.Writer) error {
	o := b.opts
	if o.warmup > 0 {
		for _, p := range b.paths {
			fmt.Fprintf(stderr, "warming up %s (%s)…\n", p.name, o.warmup)
			if _, err := b.runPgbench(ctx, p, o.warmup); err != nil {
				return err
			}
		}
	}

	rep := report{opts: o, skipped: b.skipped, gatewayTLS: o.sslmode != "disable", machine: b.machine()}
	rep.tps = newSeries(b.paths, o.rounds)
	for r := 0; r < o.rounds; r++ {
		// Each round starts with another path, so no path always runs
		// first (colder) or last (after the others warmed the server).
		for _, i := range rotation(len(b.paths), r) {
			res, err := b.runPgbench(ctx, b.paths[i], o.duration)
			if err != nil {
				return err
			}
			s := &rep.tps[i]
			s.values[r] = res.tps
			s.failed += res.failed
			s.others[r] = res.others
			if s.cpu != nil {
				c := res.cpuPerTxn
				s.cpu[r] = float64(c.total()) / float64(time.Microsecond)
				s.cpuUser[r] = float64(c.user) / float64(time.Microsecond)
				s.cpuSys[r] = float64(c.sys) / float64(time.Microsecond)
			}
			fmt.Fprintf(stderr, "pgbench round %d/%d  %-9s %10.0f TPS  %d failed\n", r+1, o.rounds, s.name, res.tps, res.failed)
		}
	}

	// The stream's target compares the gateway with direct only, so
	// pgbouncer is not streamed through.
	streamPaths := b.paths[:2]
	rep.stream = newSeries(streamPaths, o.streamRounds)
	for r := 0; r < o.streamRounds; r++ {
		for _, i := range rotation(len(streamPaths), r) {
			rps, err := streamRows(ctx, streamPaths[i], o.rows)
			if err != nil {
				return err
			}
			rep.stream[i].values[r] = rps
			fmt.Fprintf(stderr, "stream round %d/%d  %-9s %10.0f rows/s\n", r+1, o.streamRounds, streamPaths[i].name, rps)
		}
	}
	fmt.Fprintln(stderr)
	return rep.write(stdout)
}

// machine describes what the numbers depend on beyond the gateway: the
// server versions, and the CPUs that clients, gateway, pgbouncer and
// PostgreSQL all share, with the load other work put on them.
func (b *bench) machine() string {
	parts := []string{"PostgreSQL " + b.env.PG.Version}
	if b.bouncer != nil {
		if out, err := exec.Command(b.opts.pgbouncer, "--version").Output(); err == nil {
			parts = append(parts, strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
		}
	}
	cpus := fmt.Sprintf("%d CPUs shared by clients, gateway, pgbouncer and PostgreSQL", runtime.NumCPU())
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(la)); len(f) > 0 {
			cpus += ", load average " + f[0] + " before the rounds"
		}
	}
	return strings.Join(append(parts, cpus), "; ")
}

// newSeries is one empty series per path, with a value slot per round.
func newSeries(paths []path, rounds int) []series {
	out := make([]series, len(paths))
	for i, p := range paths {
		out[i] = series{name: p.name, values: make([]float64, rounds), others: make([]*othersPerTxn, rounds)}
		if p.cpu != nil {
			out[i].cpu = make([]float64, rounds)
			out[i].cpuUser = make([]float64, rounds)
			out[i].cpuSys = make([]float64, rounds)
		}
	}
	return out
}

// rotation is the order of n paths in round r: 0..n-1 shifted by r.
func rotation(n, r int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = (i + r) % n
	}
	return out
}
