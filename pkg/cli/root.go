// Package cli is gatectl's command line: the root command, global flags and
// the wiring of every command group.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	auditcmd "github.com/gatectl/gatectl/pkg/cli/audit"
	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
	connectcmd "github.com/gatectl/gatectl/pkg/cli/connect"
	democmd "github.com/gatectl/gatectl/pkg/cli/demo"
	devcmd "github.com/gatectl/gatectl/pkg/cli/dev"
	execcmd "github.com/gatectl/gatectl/pkg/cli/exec"
	gatewaycmd "github.com/gatectl/gatectl/pkg/cli/gateway"
	identitycmd "github.com/gatectl/gatectl/pkg/cli/identity"
	policycmd "github.com/gatectl/gatectl/pkg/cli/policy"
)

// Main runs gatectl with os.Args and returns the exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, cmdutil.System(), os.Args[1:])
}

// Run runs gatectl with args on the given streams and returns the exit code.
func Run(ctx context.Context, io *cmdutil.IOStreams, args []string) int {
	f := cmdutil.New(io)
	root := NewRootCmd(f)
	root.SetArgs(args)
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return cmdutil.ExitOK
	}
	if isCobraUsage(err) {
		err = &cmdutil.UsageError{Msg: err.Error() + "\nRun 'gatectl --help' for usage."}
	}
	var silent *cmdutil.SilentError
	if !errors.As(err, &silent) {
		fmt.Fprintln(io.ErrOut, "gatectl: "+err.Error())
	}
	return cmdutil.ExitCode(err)
}

// isCobraUsage reports whether err is one of cobra's own usage errors, which
// it returns untyped.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// NewRootCmd builds the command tree.
func NewRootCmd(f *cmdutil.Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "gatectl <command>",
		Short: "An access gateway for databases, SSH hosts and Kubernetes",
		Long: `gatectl runs a Layer 7 gateway between callers (engineers, CI jobs, agents) and
the databases they reach. It verifies each caller's OIDC token, injects the
target's credential, enforces the rules of a git-backed policy and writes a
tamper-evident audit log.

` + cmdutil.ExitCodesHelp(),
		Example: `  $ gatectl gateway --dev
  $ export GATECTL_CA=.gatectl/ca.pem
  $ export GATECTL_TOKEN=$(gatectl dev token --sub alice --group dba)
  $ gatectl whoami
  $ gatectl policy check ./policy`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if _, err := cmdutil.ParseFormat(f.Output); err != nil {
				return err
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &cmdutil.UsageError{Msg: err.Error()}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&f.GatewayURL, "gateway", "", "gateway API URL (env GATECTL_GATEWAY; default "+cmdutil.DefaultGateway+")")
	pf.StringVar(&f.TokenFile, "token-file", "", "file holding the caller's OIDC token; wins over env GATECTL_TOKEN, which holds a token itself")
	pf.StringVarP(&f.Output, "output", "o", "", "output format: table, json, csv or tsv (default: table on a terminal, tsv otherwise)")
	var noColor bool
	pf.BoolVar(&noColor, "no-color", false, "disable colour (also NO_COLOR)")
	cobra.OnInitialize(func() {
		if noColor {
			f.IO.SetNoColor()
		}
	})

	root.AddCommand(
		gatewaycmd.NewCmd(f),
		identitycmd.NewWhoamiCmd(f),
		identitycmd.NewTargetsCmd(f),
		identitycmd.NewTokenCmd(f),
		policycmd.NewCmd(f),
		auditcmd.NewCmd(f),
		devcmd.NewCmd(f),
		democmd.NewCmd(f),
		connectcmd.NewCmd(f),
		execcmd.NewCmd(f),
		newVersionCmd(f),
		newManCmd(f),
	)
	root.AddCommand(&cobra.Command{
		Use:   "exit-codes",
		Short: "Exit codes of gatectl commands",
		Long:  cmdutil.ExitCodesHelp(),
	})
	return root
}
