// Package identity holds the commands about the caller: whoami, targets and
// token.
package identity

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gatectl/gatectl/pkg/api"
	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
)

// NewWhoamiCmd returns `gatectl whoami`.
func NewWhoamiCmd(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the gateway says you are",
		Long:  "Show the principal the gateway maps your token to: user or service account, issuer and groups.",
		Example: `  $ gatectl whoami
  $ gatectl whoami --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWhoami(cmd.Context(), f)
		},
	}
}

func runWhoami(ctx context.Context, f *cmdutil.Factory) error {
	c, err := f.Client()
	if err != nil {
		return err
	}
	var w api.Whoami
	if err := c.Do(ctx, http.MethodGet, "/v1/whoami", nil, nil, &w); err != nil {
		return err
	}
	format, err := f.Format()
	if err != nil {
		return err
	}
	if format == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(f.IO.Out, w)
	}
	var roles []string
	if w.Admin {
		roles = append(roles, "admin")
	}
	if w.Auditor {
		roles = append(roles, "auditor")
	}
	t := cmdutil.Table{Header: []string{"FIELD", "VALUE"}}
	t.Add("principal", w.Principal)
	t.Add("issuer", w.Issuer)
	t.Add("subject", w.Subject)
	t.Add("groups", strings.Join(w.Groups, ","))
	t.Add("roles", strings.Join(roles, ","))
	t.Add("policy", shortCommit(w.PolicyCommit))
	if format == cmdutil.FormatTable {
		for _, r := range t.Rows {
			fmt.Fprintf(f.IO.Out, "%-10s %s\n", r[0]+":", r[1])
		}
		return nil
	}
	return t.Write(f.IO.Out, format)
}

// NewTargetsCmd returns `gatectl targets`.
func NewTargetsCmd(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "targets",
		Short: "List the targets you may reach",
		Long:  "List the targets that an active grant lets you reach, with the access level and the grant that gives it.",
		Example: `  $ gatectl targets
  $ gatectl targets --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			var ts []api.Target
			if err := c.Do(cmd.Context(), http.MethodGet, "/v1/targets", nil, nil, &ts); err != nil {
				return err
			}
			format, err := f.Format()
			if err != nil {
				return err
			}
			if format == cmdutil.FormatJSON {
				return cmdutil.WriteJSON(f.IO.Out, ts)
			}
			if len(ts) == 0 && format == cmdutil.FormatTable {
				fmt.Fprintln(f.IO.ErrOut, "no targets: no active grant names you or your groups; ask a target's owner for a grant")
				return nil
			}
			t := cmdutil.Table{Header: []string{"TARGET", "KIND", "ACCESS", "GRANT", "EXPIRES"}}
			for _, x := range ts {
				exp := ""
				if x.Expires != nil {
					exp = x.Expires.Format("2006-01-02")
				}
				t.Add(x.Name, x.Kind, x.Access, x.Grant, exp)
			}
			return t.Write(f.IO.Out, format)
		},
	}
}

// NewTokenCmd returns `gatectl token`.
func NewTokenCmd(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "token",
		Short:   "Print the current token",
		Long:    "Print the token gatectl would send: from --token-file when given, else GATECTL_TOKEN.",
		Example: `  $ PGPASSWORD=$(gatectl token) psql "host=127.0.0.1 port=15432 dbname=orders sslmode=require"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := f.Token()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(f.IO.Out, tok)
			return err
		},
	}
}

func shortCommit(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
