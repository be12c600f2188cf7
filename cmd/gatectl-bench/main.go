// Command gatectl-bench is the harness behind `make bench`: it starts the
// demo environment (a throwaway PostgreSQL and a --dev gateway in front of
// it) and pgbouncer when installed, then measures, in one run and with
// interleaved rounds, pgbench select-by-primary-key TPS and a large result
// streamed with pgx — direct, through the gateway and through pgbouncer —
// and prints each round, the medians, the ratios and whether this run met
// the performance targets. It reports; it never fails on a missed target.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	duration     time.Duration // one pgbench round
	warmup       time.Duration // one untimed pgbench run per path first
	rounds       int
	clients      int
	threads      int
	scale        int
	rows         int
	streamRounds int
	sslmode      string // the gateway path's sslmode
	pgbouncer    string // path of the pgbouncer binary
	verbose      bool
	cpuprofile   string // write the harness's (and so the gateway's) CPU profile here
	// statementCache is the gateway's statement_cache; -1 for its default.
	statementCache int
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit code: 0 when every
// measurement ran (whether or not the targets were met), 1 when one could not
// run, 2 for bad flags.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "gatectl-bench:", err)
		return 2
	}
	level := slog.LevelWarn
	if opts.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// The gateway's dev issuer logs through the default logger.
	slog.SetDefault(logger)

	// Ctrl-C and SIGTERM cancel ctx; every step stops at once and the
	// deferred cleanup below removes everything the run started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if opts.cpuprofile != "" {
		f, err := os.Create(opts.cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "gatectl-bench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "gatectl-bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	b, err := setup(ctx, opts, logger, stderr)
	if b != nil {
		defer func() {
			fmt.Fprintln(stderr, "stopping pgbouncer, the gateway and PostgreSQL, removing temporary files…")
			if err := b.close(); err != nil {
				fmt.Fprintln(stderr, "gatectl-bench: cleanup:", err)
			}
		}()
	}
	if err == nil {
		err = b.measure(ctx, stdout, stderr)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "gatectl-bench: interrupted")
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "gatectl-bench:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("gatectl-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of one pgbench round")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "one untimed pgbench run per path before the rounds (0 to skip)")
	fs.IntVar(&o.rounds, "rounds", 3, "pgbench rounds per path, interleaved")
	fs.IntVar(&o.clients, "clients", 4, "pgbench clients (-c)")
	fs.IntVar(&o.threads, "threads", 2, "pgbench threads (-j); at most -clients")
	fs.IntVar(&o.scale, "scale", 10, "pgbench scale factor (-i -s)")
	fs.IntVar(&o.rows, "rows", 200000, "rows in the streamed result")
	fs.IntVar(&o.streamRounds, "stream-rounds", 3, "stream rounds per path, interleaved (0 to skip the stream)")
	fs.StringVar(&o.sslmode, "gateway-sslmode", "disable", "sslmode of the gateway path: disable (default: plaintext like the direct and pgbouncer paths, to compare like with like), require or verify-full to include TLS")
	fs.StringVar(&o.pgbouncer, "pgbouncer", "/usr/sbin/pgbouncer", "pgbouncer binary; the pgbouncer path is skipped when it is missing")
	fs.IntVar(&o.statementCache, "gateway-statement-cache", -1, "the gateway's [postgres] statement_cache: 0 sends every statement to PostgreSQL as pgbench does, to measure the relay alone (default: the gateway's default)")
	fs.BoolVar(&o.verbose, "v", false, "show the gateway's info logs")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of this process, which runs the gateway, to `file`")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: gatectl-bench [flags]

Measures the gateway against a direct connection and pgbouncer in one run:
pgbench select-by-primary-key (-S -M extended) TPS and a streamed result
(rows/s), in interleaved rounds, then prints the medians, the ratios, the
CPU time per transaction of PostgreSQL, pgbench and each proxy (user and
kernel), the idle CPU (these two on Linux only), and whether the run met
the targets (gateway TPS >= pgbouncer's, stream >= 0.8x direct). Needs
PostgreSQL, pgbench and psql; pgbouncer is optional. make bench runs it with
$BENCH_FLAGS.

Example:
  $ go run ./cmd/gatectl-bench -duration 2s -rounds 2

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q; see -h", fs.Arg(0))
	}
	switch {
	case o.duration < time.Second:
		return o, errors.New("-duration must be at least 1s (pgbench -T counts whole seconds)")
	case o.warmup != 0 && o.warmup < time.Second:
		return o, errors.New("-warmup must be 0 or at least 1s")
	case o.rounds < 1:
		return o, errors.New("-rounds must be at least 1")
	case o.clients < 1:
		return o, errors.New("-clients must be at least 1")
	case o.threads < 1 || o.threads > o.clients:
		return o, fmt.Errorf("-threads must be between 1 and -clients (%d)", o.clients)
	case o.scale < 1:
		return o, errors.New("-scale must be at least 1")
	case o.rows < 1:
		return o, errors.New("-rows must be at least 1")
	case o.streamRounds < 0:
		return o, errors.New("-stream-rounds must not be negative")
	}
	switch o.sslmode {
	case "verify-full", "verify-ca", "require", "disable":
	default:
		return o, fmt.Errorf("-gateway-sslmode %q: want verify-full, verify-ca, require or disable", o.sslmode)
	}
	return o, nil
}
