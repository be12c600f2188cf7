package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/pgserver"
)

const pg15Report = `pgbench (15.10 (Debian 15.10-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: extended
number of clients: 4
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 25834
number of failed transactions: 3 (0.012%)
latency average = 0.773 ms
initial connection time = 20.117 ms
tps = 5172.101234 (without initial connection time)
`

func TestParsePgbench(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    pgbenchResult
		wantErr bool
	}{
		{name: "pg15-report", out: pg15Report, want: pgbenchResult{tps: 5172.101234, txns: 25834, failed: 3}},
		{name: "no-failed-line", out: "number of transactions actually processed: 100\ntps = 50.5 (without initial connection time)\n",
			want: pgbenchResult{tps: 50.5, txns: 100}},
		{name: "fixed-count-run", out: "number of transactions actually processed: 40/40\nnumber of failed transactions: 0 (0.000%)\ntps = 12.0 (without initial connection time)\n",
			want: pgbenchResult{tps: 12, txns: 40}},
		{name: "no-report", out: "pgbench: error: connection to server failed\n", wantErr: true},
		{name: "no-tps", out: "number of transactions actually processed: 100\n", wantErr: true},
		{name: "bad-tps", out: "number of transactions actually processed: 1\ntps = x (without initial connection time)\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePgbench(tt.out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parsePgbench error = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("parsePgbench = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{name: "none", in: nil, want: 0},
		{name: "one", in: []float64{7}, want: 7},
		{name: "odd-unsorted", in: []float64{9, 1, 5}, want: 5},
		{name: "even", in: []float64{4, 1, 3, 2}, want: 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			if got := median(tt.in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("median reordered its input: got %v, want %v", tt.in, in)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	tests := []struct {
		name string
		n, r int
		want []int
	}{
		{name: "first-round", n: 3, r: 0, want: []int{0, 1, 2}},
		{name: "second-round", n: 3, r: 1, want: []int{1, 2, 0}},
		{name: "wraps", n: 2, r: 3, want: []int{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rotation(tt.n, tt.r); !slices.Equal(got, tt.want) {
				t.Errorf("rotation(%d, %d) = %v, want %v", tt.n, tt.r, got, tt.want)
			}
		})
	}
}

func TestUserlistLine(t *testing.T) {
	tests := []struct {
		name, user, password, want string
	}{
		{name: "plain", user: "orders_ro", password: "abc123", want: "\"orders_ro\" \"abc123\"\n"},
		{name: "quote-doubled", user: "u", password: `a"b`, want: "\"u\" \"a\"\"b\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := userlistLine(tt.user, tt.password); got != tt.want {
				t.Errorf("userlistLine = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // substring; empty for success
	}{
		{name: "defaults", args: nil},
		{name: "short-run", args: []string{"-duration", "2s", "-rounds", "2", "-clients", "8", "-threads", "4"}},
		{name: "sub-second-round", args: []string{"-duration", "500ms"}, wantErr: "-duration"},
		{name: "more-threads-than-clients", args: []string{"-clients", "2", "-threads", "3"}, wantErr: "-threads"},
		{name: "unknown-sslmode", args: []string{"-gateway-sslmode", "allow"}, wantErr: "-gateway-sslmode"},
		{name: "no-rounds", args: []string{"-rounds", "0"}, wantErr: "-rounds"},
		{name: "stray-argument", args: []string{"extra"}, wantErr: "unexpected argument"},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("parseFlags(%q) = %v, want no error", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("parseFlags(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestReportTargets(t *testing.T) {
	opts := options{clients: 4, threads: 2, scale: 10, rounds: 2, duration: 5 * time.Second, rows: 200000, streamRounds: 2, sslmode: "verify-full"}
	others := func(server, client time.Duration, idle float64) *othersPerTxn {
		return &othersPerTxn{server: server, client: client, idle: idle}
	}
	tps := func(gateway float64, failed int64) []series {
		return []series{
			{name: "direct", values: []float64{1000, 1000},
				others: []*othersPerTxn{others(130*time.Microsecond, 21*time.Microsecond, 0.01), others(132*time.Microsecond, 23*time.Microsecond, 0.02)}},
			{name: "gateway", values: []float64{gateway, gateway}, failed: failed,
				cpu: []float64{40, 44}, cpuUser: []float64{12, 14}, cpuSys: []float64{28, 30},
				// A round whose machine numbers could not be read counts
				// for none of the medians.
				others: []*othersPerTxn{others(135*time.Microsecond, 21*time.Microsecond, 0.095), nil}},
			{name: "pgbouncer", values: []float64{600, 600},
				cpu: []float64{31, 31}, cpuUser: []float64{7, 8}, cpuSys: []float64{24, 23}},
		}
	}
	stream := func(gateway float64) []series {
		return []series{{name: "direct", values: []float64{100, 100}}, {name: "gateway", values: []float64{gateway, gateway}}}
	}
	tests := []struct {
		name string
		rep  report
		want []string // lines the report must hold, runs of spaces as one
	}{
		{
			name: "all-met",
			rep:  report{opts: opts, tps: tps(660, 0), stream: stream(90), gatewayTLS: true},
			want: []string{
				"ratios: gateway/direct 0.66   gateway/pgbouncer 1.10   pgbouncer/direct 0.60",
				"CPU time per transaction in µs, and idle CPU (medians of the rounds)",
				"path        PostgreSQL   pgbench   proxy   (user   kernel)   CPUs idle",
				"direct           131.0      22.0       -       -         -        1.5%",
				"gateway          135.0      21.0    42.0   (13.0     29.0)        9.5%",
				"pgbouncer            -         -    31.0    (7.5     23.5)           -",
				"ratio: gateway/direct 0.90",
				"gateway select-only TPS >= pgbouncer's   1.10x   met",
				"gateway stream >= 0.8x direct            0.90x   met",
				"0 failed transactions through the gateway   0       met",
			},
		},
		{
			name: "missed",
			rep:  report{opts: opts, tps: tps(300, 2), stream: stream(50), gatewayTLS: true},
			want: []string{
				"gateway select-only TPS >= pgbouncer's      0.50x   NOT met",
				"gateway stream >= 0.8x direct               0.50x   NOT met",
				"0 failed transactions through the gateway   2       NOT met",
			},
		},
		{
			name: "pgbouncer-skipped",
			rep:  report{opts: opts, tps: tps(660, 0)[:2], stream: stream(90), skipped: "/usr/sbin/pgbouncer not found", gatewayTLS: true},
			want: []string{
				"pgbouncer skipped: /usr/sbin/pgbouncer not found",
				"ratios: gateway/direct 0.66",
				"gateway select-only TPS >= pgbouncer's      -       not measured",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.rep.write(&buf); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, l := range strings.Split(buf.String(), "\n") {
				lines = append(lines, strings.Join(strings.Fields(l), " "))
			}
			for _, w := range tt.want {
				if !slices.Contains(lines, strings.Join(strings.Fields(w), " ")) {
					t.Errorf("report has no line %q; got:\n%s", w, buf.String())
				}
			}
		})
	}
}

// TestRunEndToEnd runs the whole harness at a tiny size against a real
// PostgreSQL, the gateway and, when installed, pgbouncer, and checks the
// report, that no secret reaches the output and that nothing is left behind.
func TestRunEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and pgbouncer; skipped with -short")
	}
	// make test installs what this needs; missing tools are a failure,
	// not a reason to pass quietly.
	if _, ok := pgserver.Installed(); !ok {
		t.Fatal("PostgreSQL is not installed (make deps)")
	}
	if _, err := findPgbench(); err != nil {
		t.Fatal(err)
	}
	before, _ := filepath.Glob("/tmp/gatectl-bench-*")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-duration", "1s", "-warmup", "0", "-rounds", "1", "-scale", "1", "-rows", "1000", "-stream-rounds", "1"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("run exit code = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	want := []string{"direct", "gateway", "ratio: gateway/direct", "0 failed transactions through the gateway"}
	if _, err := exec.LookPath("/usr/sbin/pgbouncer"); err == nil {
		want = append(want, "gateway/pgbouncer", "pgbouncer/direct")
	} else {
		want = append(want, "pgbouncer skipped:")
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q; got:\n%s", w, out)
		}
	}
	// On Linux the cost table has PostgreSQL's and pgbench's CPU time and
	// the idle share of the direct path, read from /proc.
	if runtime.GOOS == "linux" && !regexp.MustCompile(`(?m)^ *direct +[0-9]+\.[0-9] +[0-9]+\.[0-9] +- +- +- +[0-9]+\.[0-9]%$`).MatchString(out) {
		t.Errorf("report has no direct row with PostgreSQL, pgbench and idle numbers; got:\n%s", out)
	}
	// The gateway runs must not fail (pgbench -S sends only reads).
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "0 failed transactions through the gateway") && !strings.HasSuffix(l, " met") {
			t.Errorf("gateway transactions failed: %q", l)
		}
	}
	pw := os.Getenv("ORDERS_RO_PASSWORD")
	if pw == "" {
		t.Fatal("ORDERS_RO_PASSWORD is not set after the run; cannot check it stayed out of the output")
	}
	if strings.Contains(out+stderr.String(), pw) {
		t.Error("the orders_ro password appears in the output")
	}
	after, _ := filepath.Glob("/tmp/gatectl-bench-*")
	for _, d := range after {
		if !slices.Contains(before, d) {
			t.Errorf("temporary directory %s left behind", d)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       procStat
		wantErr    bool
	}{
		{name: "plain", stat: "4242 (pgbouncer) S 1 4242 4242 0 -1 4194560 300 0 0 0 150 75 0 0 20 0 1 0 100 0 0",
			want: procStat{ppid: 1, own: cpuTime{user: 1500 * time.Millisecond, sys: 750 * time.Millisecond}}},
		{name: "spaces-and-parens-in-name", stat: "7 (a (b) c) R 9 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 0 0",
			want: procStat{ppid: 9, own: cpuTime{user: 30 * time.Millisecond, sys: 40 * time.Millisecond}}},
		{name: "reaped-children", stat: "100 (postgres) S 1 100 100 0 -1 0 0 0 0 0 2 1 500 250 20 0 1 0 1 0 0",
			want: procStat{ppid: 1, own: cpuTime{user: 20 * time.Millisecond, sys: 10 * time.Millisecond},
				reaped: cpuTime{user: 5 * time.Second, sys: 2500 * time.Millisecond}}},
		{name: "truncated", stat: "7 (x) R 1 2 3", wantErr: true},
		{name: "no-name", stat: "garbage", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat(tc.stat)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
