// Package gateway is the `gatectl gateway` command.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
	gw "github.com/gatectl/gatectl/pkg/gateway"
)

// Options are the flags of `gatectl gateway`.
type Options struct {
	IO *cmdutil.IOStreams

	ConfigFile string
	Config     gw.Config
	// set records which flags were given, so they override gateway.toml.
	set func(name string) bool
}

// NewCmd returns `gatectl gateway`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &Options{IO: f.IO}
	var flags gw.Config
	cmd := &cobra.Command{
		Use:   "gateway [--config gateway.toml] [--dev]",
		Short: "Run the gateway",
		Long: `Run the gateway: the HTTPS API and the PostgreSQL listener, following the policy
repository and writing the audit log under the data dir.

With --dev the gateway needs nothing installed: an embedded OIDC issuer (mint
tokens with 'gatectl dev token'), a self-signed CA written to DATA/ca.pem, and,
without --policy, a policy repository created from the template in DATA/policy.
--dev refuses to listen on anything but loopback.

SIGHUP re-reads the policy repository at once; SIGTERM and Ctrl-C stop
accepting and let sessions finish.`,
		Example: `  $ gatectl gateway --dev
  $ gatectl gateway --dev --policy ./policy --data-dir /tmp/gw
  $ gatectl gateway --config /etc/gatectl/gateway.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.set = func(n string) bool { return cmd.Flags().Changed(n) }
			if opts.ConfigFile != "" {
				c, err := gw.LoadConfig(opts.ConfigFile)
				if err != nil {
					return &cmdutil.UsageError{Msg: err.Error()}
				}
				opts.Config = *c
			}
			merge(&opts.Config, flags, opts.set)
			return run(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.ConfigFile, "config", "", "gateway.toml with listeners, TLS, policy source and storage")
	fl.BoolVar(&flags.Dev, "dev", false, "development mode: embedded issuer, self-signed CA, template policy; loopback only")
	fl.StringVar(&flags.DataDir, "data-dir", "", "directory for the audit store, policy clone and (--dev) CA (default "+gw.DefaultDataDir+")")
	fl.StringVar(&flags.Policy.Source, "policy", "", "policy repository: a path, file://, https:// or ssh URL")
	fl.StringVar(&flags.Policy.Branch, "policy-branch", "", "branch of the policy repository to follow (default main)")
	fl.StringVar(&flags.Listen.API, "listen-api", "", "HTTPS API address (default "+gw.DefaultAPI+")")
	fl.StringVar(&flags.Listen.Postgres, "listen-postgres", "", "PostgreSQL listener address, or \"off\" (default "+gw.DefaultPostgres+")")
	return cmd
}

// merge lets the flags that were given override the config file.
func merge(c *gw.Config, fl gw.Config, set func(string) bool) {
	if set("dev") {
		c.Dev = fl.Dev
	}
	if set("data-dir") {
		c.DataDir = fl.DataDir
	}
	if set("policy") {
		c.Policy.Source = fl.Policy.Source
	}
	if set("policy-branch") {
		c.Policy.Branch = fl.Policy.Branch
	}
	if set("listen-api") {
		c.Listen.API = fl.Listen.API
	}
	if set("listen-postgres") {
		c.Listen.Postgres = fl.Listen.Postgres
	}
}

func run(ctx context.Context, opts *Options) error {
	logger := slog.New(slog.NewTextHandler(opts.IO.ErrOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	g, err := gw.New(opts.Config, logger)
	if err != nil {
		return &cmdutil.UsageError{Msg: err.Error()}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	return g.Run(ctx, reload, func(r gw.Ready) {
		w := opts.IO.ErrOut
		fmt.Fprintf(w, "gatectl gateway ready\n  api       %s\n", r.API)
		if r.Postgres != "" {
			fmt.Fprintf(w, "  postgres  %s\n", r.Postgres)
		}
		fmt.Fprintf(w, "  policy    %s\n  data dir  %s\n", r.Policy, r.DataDir)
		if r.CAFile != "" {
			fmt.Fprintf(w, "\nIn another terminal:\n  export GATECTL_GATEWAY=%s GATECTL_CA=%s\n  export GATECTL_TOKEN=$(gatectl dev token --sub alice --group dba)\n  gatectl whoami\n", r.API, r.CAFile)
		}
	})
}
