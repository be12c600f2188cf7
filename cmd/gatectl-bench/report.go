package main

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The targets of the P2 issue, shown by the report and never asserted.
const (
	targetTPSvsPgbouncer = 1.0 // gateway select-only TPS / pgbouncer's
	targetStreamVsDirect = 0.8 // gateway rows/s / direct rows/s
)

// series is one path's measurements, one value per round in round order.
type series struct {
	name   string
	values []float64
	failed int64 // failed pgbench transactions over all rounds
	// cpu is the proxy's CPU microseconds per transaction in each round,
	// cpuUser and cpuSys its user and kernel parts; nil for a path without
	// a proxy.
	cpu, cpuUser, cpuSys []float64
	// others is where the rest of the machine's time went in each round;
	// an entry is nil where it could not be read.
	others []*othersPerTxn
}

func (s series) median() float64 { return median(s.values) }

// median is the middle value of v (the mean of the two middle ones for an
// even count); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// report is the outcome of a run.
type report struct {
	opts       options
	tps        []series // direct, gateway and, unless skipped, pgbouncer
	stream     []series // direct, gateway; empty when skipped
	skipped    string   // why pgbouncer was not measured
	gatewayTLS bool
	machine    string // versions and load, one line; empty to leave out
}

// ratio is a/b of the named series' medians; ok is false when either is
// missing or b is zero.
func ratio(ss []series, a, b string) (r float64, ok bool) {
	var x, y float64
	var hx, hy bool
	for _, s := range ss {
		switch s.name {
		case a:
			x, hx = s.median(), true
		case b:
			y, hy = s.median(), true
		}
	}
	if !hx || !hy || y == 0 {
		return 0, false
	}
	return x / y, true
}

// write prints the report: a table of TPS per round with medians and
// ratios, the same for the stream, and the targets.
func (r report) write(w io.Writer) error {
	var buf bytes.Buffer
	o := r.opts
	transport := "gateway over TLS (sslmode=" + o.sslmode + "), direct and pgbouncer plaintext"
	if !r.gatewayTLS {
		transport = "every path plaintext (gateway sslmode=disable)"
	}
	if r.machine != "" {
		fmt.Fprintln(&buf, r.machine)
	}
	fmt.Fprintf(&buf, "pgbench -n -S -M extended -c %d -j %d, scale %d, rounds: %d x %s interleaved; TPS\n",
		o.clients, o.threads, o.scale, o.rounds, o.duration)
	cache := "the gateway's statement cache on: it keeps pgbench's query prepared, so PostgreSQL plans it once"
	if o.statementCache == 0 {
		cache = "the gateway's statement cache off"
	}
	fmt.Fprintf(&buf, "(%s; audit on; %s)\n", transport, cache)
	table(&buf, o.rounds, r.tps, true)
	if r.skipped != "" {
		fmt.Fprintf(&buf, "pgbouncer skipped: %s\n", r.skipped)
	}
	var parts []string
	for _, p := range [][2]string{{"gateway", "direct"}, {"gateway", "pgbouncer"}, {"pgbouncer", "direct"}} {
		if v, ok := ratio(r.tps, p[0], p[1]); ok {
			parts = append(parts, fmt.Sprintf("%s/%s %.2f", p[0], p[1], v))
		}
	}
	fmt.Fprintf(&buf, "ratios: %s\n", strings.Join(parts, "   "))
	costTable(&buf, r.tps)
	fmt.Fprintln(&buf)

	if len(r.stream) > 0 && o.streamRounds > 0 {
		fmt.Fprintf(&buf, "stream SELECT g, md5(g::text), now() FROM generate_series(1, %d) g with pgx, rounds: %d interleaved; rows/s\n",
			o.rows, o.streamRounds)
		table(&buf, o.streamRounds, r.stream, false)
		if v, ok := ratio(r.stream, "gateway", "direct"); ok {
			fmt.Fprintf(&buf, "ratio: gateway/direct %.2f\n", v)
		}
		fmt.Fprintln(&buf)
	}

	fmt.Fprintln(&buf, "targets (issue P2), reported, not asserted")
	tw := tabwriter.NewWriter(&buf, 0, 0, 3, ' ', 0)
	v, ok := ratio(r.tps, "gateway", "pgbouncer")
	fmt.Fprintf(tw, "  gateway select-only TPS >= pgbouncer's\t%s\t%s\n", ratioText(v, ok), verdict(ok, v >= targetTPSvsPgbouncer))
	v, ok = ratio(r.stream, "gateway", "direct")
	fmt.Fprintf(tw, "  gateway stream >= %.1fx direct\t%s\t%s\n", targetStreamVsDirect, ratioText(v, ok), verdict(ok, v >= targetStreamVsDirect))
	for _, s := range r.tps {
		if s.name == "gateway" {
			fmt.Fprintf(tw, "  0 failed transactions through the gateway\t%d\t%s\n", s.failed, verdict(true, s.failed == 0))
		}
	}
	tw.Flush()
	_, err := w.Write(buf.Bytes())
	return err
}

// table writes one row per series: the rounds, the median and, for
// pgbench, the failed transactions.
func table(w io.Writer, rounds int, ss []series, failed bool) {
	width := nameWidth(ss)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', tabwriter.AlignRight)
	// Names padded to one width: right-aligned, they read left-aligned.
	fmt.Fprintf(tw, "%-*s\t", width, "path")
	for i := 1; i <= rounds; i++ {
		fmt.Fprintf(tw, "round %d\t", i)
	}
	fmt.Fprint(tw, "median\t")
	if failed {
		fmt.Fprint(tw, "failed\t")
	}
	fmt.Fprintln(tw)
	for _, s := range ss {
		fmt.Fprintf(tw, "%-*s\t", width, s.name)
		for _, v := range s.values {
			fmt.Fprintf(tw, "%.0f\t", v)
		}
		fmt.Fprintf(tw, "%.0f\t", s.median())
		if failed {
			fmt.Fprintf(tw, "%d\t", s.failed)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func ratioText(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

// verdict is "met", "NOT met", or "not measured" when the numbers are
// missing (pgbouncer skipped, no stream rounds).
func verdict(measured, met bool) string {
	switch {
	case !measured:
		return "not measured"
	case met:
		return "met"
	default:
		return "NOT met"
	}
}

// costTable reports, per path, the medians of the CPU time that PostgreSQL,
// pgbench and the proxy (in user space and in the kernel) spent per
// transaction, and of the share of the machine's CPU time left idle. The
// clients, the proxy and PostgreSQL share the cores, so a proxy's TPS is
// what its own CPU time and the idle time it causes leave to the others;
// these numbers vary less between runs than TPS does. Nothing is written
// when none of it was measured.
func costTable(w io.Writer, ss []series) {
	known := false
	for _, s := range ss {
		known = known || s.cpu != nil || slices.ContainsFunc(s.others, func(o *othersPerTxn) bool { return o != nil })
	}
	if !known {
		return
	}
	fmt.Fprintln(w, "CPU time per transaction in µs, and idle CPU (medians of the rounds)")
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tPostgreSQL\tpgbench\tproxy\t(user\tkernel)\tCPUs idle\t\n", nameWidth(ss), "path")
	for _, s := range ss {
		var server, client, idle []float64
		for _, o := range s.others {
			if o != nil {
				server = append(server, float64(o.server)/float64(time.Microsecond))
				client = append(client, float64(o.client)/float64(time.Microsecond))
				idle = append(idle, 100*o.idle)
			}
		}
		cell := func(v []float64, format string) string {
			if len(v) == 0 {
				return "-"
			}
			return fmt.Sprintf(format, median(v))
		}
		fmt.Fprintf(tw, "%-*s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", nameWidth(ss), s.name,
			cell(server, "%.1f"), cell(client, "%.1f"), cell(s.cpu, "%.1f"), cell(s.cpuUser, "(%.1f"), cell(s.cpuSys, "%.1f)"), cell(idle, "%.1f%%"))
	}
	tw.Flush()
}

// nameWidth is the width of the path column: its title or the longest name.
func nameWidth(ss []series) int {
	n := len("path")
	for _, s := range ss {
		n = max(n, len(s.name))
	}
	return n
}
