// Package demo is `gatectl demo`.
package demo

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
	"github.com/gatectl/gatectl/pkg/demo"
	"github.com/gatectl/gatectl/pkg/gateway"
)

// Options are the flags of `gatectl demo`.
type Options struct {
	IO             *cmdutil.IOStreams
	Dir            string
	ListenAPI      string
	ListenPostgres string
}

// NewCmd returns `gatectl demo`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &Options{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a throwaway PostgreSQL and a --dev gateway with a walkthrough",
		Long: `Start a throwaway PostgreSQL (initdb in a temporary directory) with a sample
schema — customers with PII-looking columns, and orders — a policy repository
from the template pointing at it, and a gateway in --dev mode in front. Then
print commands to try in another terminal. Ctrl-C (or SIGTERM, or closing
the terminal) stops everything and removes what it created.

Needs a PostgreSQL server installation (make demo installs it).`,
		Example: `  $ gatectl demo
  $ gatectl demo --listen-api 127.0.0.1:9443 --listen-postgres 127.0.0.1:25432`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, opts)
		},
	}
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "keep the demo's gateway data and policy repo in this directory (default: a temporary one, removed at exit)")
	cmd.Flags().StringVar(&opts.ListenAPI, "listen-api", gateway.DefaultAPI, "gateway API address")
	cmd.Flags().StringVar(&opts.ListenPostgres, "listen-postgres", gateway.DefaultPostgres, "gateway PostgreSQL address")
	return cmd
}

func run(cmd *cobra.Command, opts *Options) error {
	// A closed terminal (SIGHUP) stops the demo like Ctrl-C does: the
	// throwaway PostgreSQL runs in its own process and must not outlive it.
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGHUP)
	defer stop()
	logger := slog.New(slog.NewTextHandler(opts.IO.ErrOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Fprintln(opts.IO.ErrOut, "starting a throwaway PostgreSQL and a --dev gateway…")
	env, err := demo.Start(ctx, demo.Options{Dir: opts.Dir, ListenAPI: opts.ListenAPI, ListenPostgres: opts.ListenPostgres, Logger: logger})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	host, port, _ := net.SplitHostPort(env.Ready.Postgres)
	err = walkthrough.Execute(opts.IO.ErrOut, walkthroughData{
		API: env.Ready.API, CA: env.Ready.CAFile, PGHost: host, PGPort: port,
		Upstream: env.PG.Addr(), UpstreamDir: filepath.Join(env.PG.Dir, "data"), Policy: env.PolicyDir, Path: pathNeeded(), Keep: opts.Dir != "",
	})
	if err != nil {
		env.Stop()
		return err
	}
	<-ctx.Done()
	if opts.Dir != "" {
		fmt.Fprintf(opts.IO.ErrOut, "\nstopping the gateway and PostgreSQL; the demo files stay in %s\n", opts.Dir)
	} else {
		fmt.Fprintln(opts.IO.ErrOut, "\nstopping the gateway and PostgreSQL, removing the demo files…")
	}
	return env.Stop()
}

// walkthroughData fills the walkthrough.
type walkthroughData struct {
	API, CA, PGHost, PGPort, Upstream, Policy string
	// UpstreamDir is the throwaway PostgreSQL's data directory (pg_ctl -D).
	UpstreamDir string
	// Path, when not empty, is the directory of this gatectl binary, which
	// the commands need on PATH because no gatectl on PATH is this one
	// (`make demo` runs bin/gatectl).
	Path string
	// Keep is set when the demo files stay after Ctrl-C (--dir).
	Keep bool
}

// pathNeeded returns the directory to put on PATH so that "gatectl" in
// the walkthrough runs this binary, or "" when it already does.
func pathNeeded() string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	if found, err := exec.LookPath("gatectl"); err == nil {
		a, errA := os.Stat(self)
		b, errB := os.Stat(found)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return ""
		}
	}
	return shellQuote(filepath.Dir(self))
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,:@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// The commands between "Try this" and "Press Ctrl-C" are README.md's quick
// tour too; TestREADMEShowsTheWalkthrough keeps the two the same.
var walkthrough = template.Must(template.New("").Parse(strings.TrimLeft(`
gatectl demo is running
  gateway API        {{.API}}
  gateway PostgreSQL {{.PGHost}}:{{.PGPort}}   (upstream: throwaway PostgreSQL at {{.Upstream}}{{if .UpstreamDir}}, files in {{.UpstreamDir}}{{end}})
  policy repository  {{.Policy}}   (edit, commit, and the gateway follows)

Try this in another terminal:
{{if .Path}}
  export PATH={{.Path}}:"$PATH"    # this gatectl
{{end}}
  export GATECTL_GATEWAY={{.API}} GATECTL_CA={{.CA}}

  # alice is a DBA: group dba has a write grant on "orders"
  export GATECTL_TOKEN=$(gatectl dev token --sub alice --group dba)
  gatectl whoami
  gatectl targets

  # psql straight at the gateway: the token is the password, the target is the database
  PGPASSWORD=$GATECTL_TOKEN psql "host={{.PGHost}} port={{.PGPort}} dbname=orders sslmode=verify-full sslrootcert=$GATECTL_CA"

  # or let gatectl do that
  gatectl exec orders -c "SELECT id, name, email FROM customers LIMIT 5"
  gatectl exec orders -c "DROP TABLE orders"                        # refused by rule no-drop: exit 3
  gatectl exec orders -c "COPY orders TO STDOUT WITH (FORMAT csv)" > orders.csv
  gatectl connect orders -- psql                                   # a local listener only this psql can use

  # the etl service account has a read grant
  GATECTL_TOKEN=$(gatectl dev token --sub etl) gatectl exec orders -c "SELECT count(*) FROM orders"
  GATECTL_TOKEN=$(gatectl dev token --sub etl) gatectl exec orders -c "UPDATE orders SET status = 'x'"  # refused: read grant

  # what happened, as an auditor
  export GATECTL_TOKEN=$(gatectl dev token --sub sam --group security)
  gatectl audit tail
  gatectl audit verify

Press Ctrl-C to stop{{if not .Keep}} and remove everything{{end}}.
`, "\n")))
