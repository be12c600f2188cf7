// Package demo is `gatectl demo`.
package demo

import (
	"fmt"
	"log/slog"
	"net"
	"os/signal"
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
	err = walkthrough.Execute(opts.IO.ErrOut, map[string]string{
		"API": env.Ready.API, "CA": env.Ready.CAFile, "PGHost": host, "PGPort": port,
		"Upstream": env.PG.Addr(), "Policy": env.PolicyDir,
	})
	if err != nil {
		env.Stop()
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(opts.IO.ErrOut, "\nstopping the gateway and PostgreSQL, removing the demo files…")
	return env.Stop()
}

var walkthrough = template.Must(template.New("").Parse(strings.TrimLeft(`
gatectl demo is running
  gateway API        {{.API}}
  gateway PostgreSQL {{.PGHost}}:{{.PGPort}}   (upstream: throwaway PostgreSQL at {{.Upstream}})
  policy repository  {{.Policy}}   (edit, commit, and the gateway follows)

Try this in another terminal:

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

  # the etl service account has a read grant
  GATECTL_TOKEN=$(gatectl dev token --sub etl) gatectl exec orders -c "SELECT count(*) FROM orders"
  GATECTL_TOKEN=$(gatectl dev token --sub etl) gatectl exec orders -c "UPDATE orders SET status = 'x'"  # refused: read grant

  # what happened, as an auditor
  export GATECTL_TOKEN=$(gatectl dev token --sub sam --group security)
  gatectl audit tail
  gatectl audit verify

Press Ctrl-C to stop and remove everything.
`, "\n")))
