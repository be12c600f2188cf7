// Package dev holds `gatectl dev`, the helpers of a --dev gateway.
package dev

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
	"github.com/gatectl/gatectl/pkg/client"
)

// NewCmd returns `gatectl dev`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev <command>",
		Short: "Helpers for a gateway running with --dev",
		RunE:  cmdutil.GroupRunE,
	}
	cmd.AddCommand(newTokenCmd(f))
	return cmd
}

type tokenOptions struct {
	Sub    string
	Groups []string
	TTL    time.Duration
}

func newTokenCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &tokenOptions{}
	cmd := &cobra.Command{
		Use:   "token --sub <subject> [--group <group>]...",
		Short: "Mint a token from a --dev gateway's embedded issuer",
		Long: `Mint a token from the embedded issuer of a gateway running with --dev. The
token is for user:<subject> with the given groups, or for a service account
when the subject matches one in identity.toml. Only a --dev gateway serves
this, and only on loopback.`,
		Example: `  $ export GATECTL_TOKEN=$(gatectl dev token --sub alice --group dba)
  $ gatectl dev token --sub etl --ttl 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Sub == "" {
				return cmdutil.Usagef("--sub is required: the subject to mint a token for")
			}
			if opts.TTL <= 0 {
				return cmdutil.Usagef("--ttl must be positive, e.g. --ttl 10m")
			}
			c, err := f.AnonymousClient()
			if err != nil {
				return err
			}
			req := map[string]any{"sub": opts.Sub, "groups": opts.Groups, "ttl": opts.TTL.String()}
			var resp struct {
				AccessToken string `json:"access_token"`
			}
			if err := c.Do(cmd.Context(), http.MethodPost, "/dev/token", nil, req, &resp); err != nil {
				if ae := (*client.Error)(nil); errors.As(err, &ae) && ae.Status != http.StatusNotFound {
					// The dev issuer answered: its reason is the whole story.
					return fmt.Errorf("mint a dev token: %w", err)
				}
				return fmt.Errorf("mint a dev token: %w (is the gateway running with --dev?)", err)
			}
			_, err = fmt.Fprintln(f.IO.Out, resp.AccessToken)
			return err
		},
	}
	cmd.Flags().StringVar(&opts.Sub, "sub", "", "subject of the token")
	cmd.Flags().StringArrayVar(&opts.Groups, "group", nil, "group of the subject (repeatable)")
	cmd.Flags().DurationVar(&opts.TTL, "ttl", time.Hour, "lifetime of the token")
	return cmd
}
