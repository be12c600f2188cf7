// Package policy holds `gatectl policy`: init, check and status.
package policy

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	gatectl "github.com/gatectl/gatectl"
	"github.com/gatectl/gatectl/pkg/api"
	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
	"github.com/gatectl/gatectl/pkg/policy"
	"github.com/gatectl/gatectl/pkg/policy/repo"
	"github.com/gatectl/gatectl/pkg/policy/sqlrequest"
)

// NewCmd returns `gatectl policy`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy <command>",
		Short: "Create, check and inspect the policy repository",
		RunE:  cmdutil.GroupRunE,
	}
	cmd.AddCommand(newInitCmd(f), newCheckCmd(f), newStatusCmd(f))
	return cmd
}

func newInitCmd(f *cmdutil.Factory) *cobra.Command {
	var branch string
	cmd := &cobra.Command{
		Use:   "init <dir>",
		Short: "Create a policy repository from the template",
		Long: `Create a new git repository in <dir> holding the policy template: settings,
identity, an example target, grants, rules, tests, CODEOWNERS and a CI workflow
that runs 'gatectl policy check' on every pull request. The first commit is on
main. <dir> must not exist or be empty.`,
		Example: `  $ gatectl policy init ./policy
  $ gatectl policy check ./policy`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := repo.Init(args[0], gatectl.PolicyTemplate(), branch)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.IO.ErrOut, "created policy repository %s (commit %s on %s)\nnext: edit targets/ and grants/, run `gatectl policy check %s`, commit, and point the gateway at it with --policy\n",
				args[0], c.Short(), branch, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&branch, "branch", "main", "name of the first branch")
	return cmd
}

func newCheckCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check [dir]",
		Short: "Validate a policy directory and run its tests",
		Long: `Load every file of a policy directory strictly (unknown keys, bad values and
references to missing targets, issuers or service accounts are errors with
file:line), then run the [[test]] cases of tests/*.toml offline. Exits 0 when
the policy is valid and every test passes, 1 otherwise.`,
		Example: `  $ gatectl policy check
  $ gatectl policy check ./policy --output json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return runCheck(f, dir)
		},
	}
	return cmd
}

type testJSON struct {
	File    string `json:"file"`
	As      string `json:"as"`
	Target  string `json:"target"`
	Request string `json:"request"`
	Expect  string `json:"expect"`
	Got     string `json:"got"`
	Rule    string `json:"rule,omitempty"`
	Pass    bool   `json:"pass"`
	Message string `json:"message,omitempty"`
}

func runCheck(f *cmdutil.Factory, dir string) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return cmdutil.Usagef("%s is not a policy directory", dir)
	}
	p, err := policy.Load(os.DirFS(dir))
	if err != nil {
		var le *policy.LoadError
		if errors.As(err, &le) {
			shown, more := le.Listed()
			for _, pr := range shown {
				fmt.Fprintf(f.IO.ErrOut, "%s: %s\n", filepath.Join(dir, pr.Pos.String()), pr.Msg)
			}
			if more > 0 {
				fmt.Fprintf(f.IO.ErrOut, "and %d more problems\n", more)
			}
			return fmt.Errorf("policy in %s is invalid: %d problem(s)", dir, le.Count())
		}
		return err
	}
	results := p.RunTests(sqlrequest.FromSQL, time.Now())
	format, err := f.Format()
	if err != nil {
		return err
	}
	failed := 0
	var out []testJSON
	for _, r := range results {
		if !r.Pass {
			failed++
		}
		msg := r.Got.Message
		if r.Err != nil {
			msg = r.Err.Error()
		}
		out = append(out, testJSON{File: r.Test.Pos.String(), As: r.Test.As, Target: r.Test.Target, Request: r.Test.Request,
			Expect: r.Test.Expect.String(), Got: r.Got.Decision.String(), Rule: r.Got.Rule, Pass: r.Pass, Message: msg})
	}
	if format == cmdutil.FormatJSON {
		if err := cmdutil.WriteJSON(f.IO.Out, map[string]any{"valid": true, "tests": out, "failed": failed}); err != nil {
			return err
		}
	} else {
		for _, t := range out {
			if t.Pass {
				continue
			}
			fmt.Fprintf(f.IO.ErrOut, "FAIL %s: as %s on %s: %q: want %s, got %s", filepath.Join(dir, t.File), t.As, t.Target, t.Request, t.Expect, t.Got)
			if t.Rule != "" {
				fmt.Fprintf(f.IO.ErrOut, " (rule %q)", t.Rule)
			}
			if t.Message != "" {
				fmt.Fprintf(f.IO.ErrOut, ": %s", t.Message)
			}
			fmt.Fprintln(f.IO.ErrOut)
		}
		if len(p.Masks) > 0 {
			fmt.Fprintf(f.IO.ErrOut, "note: %s checked here, but the gateway does not apply [[mask]] rules yet: results are returned unmasked\n", count(len(p.Masks), "mask rule"))
		}
		fmt.Fprintf(f.IO.Out, "policy valid: %s, %s, %s; %d of %s passed\n",
			count(len(p.Targets), "target"), count(len(p.Grants), "grant"), count(len(p.Denies)+len(p.Approves)+len(p.Masks), "rule"),
			len(results)-failed, count(len(results), "test"))
	}
	if failed > 0 {
		if format == cmdutil.FormatJSON {
			return &cmdutil.SilentError{Code: cmdutil.ExitError}
		}
		return fmt.Errorf("%d policy test(s) failed", failed)
	}
	return nil
}

func newStatusCmd(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show which policy commit the gateway runs",
		Long: `Show the policy commit the gateway has live, the last commit it tried and, if
that commit was refused or the policy source could not be read, why (with
file:line). Exits 1 in that case, so that monitoring can alert on a gateway
that runs an older policy than the branch. Admins only.`,
		Example: `  $ gatectl policy status
  $ gatectl policy status --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			var st api.PolicyStatus
			if err := c.Do(cmd.Context(), http.MethodGet, "/v1/policy/status", nil, nil, &st); err != nil {
				return err
			}
			format, err := f.Format()
			if err != nil {
				return err
			}
			stale := error(nil)
			if st.LastError != "" {
				stale = &cmdutil.SilentError{Code: cmdutil.ExitError}
			}
			if format == cmdutil.FormatJSON {
				if err := cmdutil.WriteJSON(f.IO.Out, st); err != nil {
					return err
				}
				return stale
			}
			w := f.IO.Out
			fmt.Fprintf(w, "source:     %s (branch %s)\n", st.Source, st.Branch)
			fmt.Fprintf(w, "live:       %s %q (since %s)\n", short(st.Live.Hash), st.Live.Subject, st.LiveSince.Format(time.RFC3339))
			if st.LastTried.Hash != "" && st.LastTried.Hash != st.Live.Hash {
				fmt.Fprintf(w, "last tried: %s %q at %s\n", short(st.LastTried.Hash), st.LastTried.Subject, st.LastTriedAt.Format(time.RFC3339))
			}
			if st.LastError != "" {
				fmt.Fprintf(w, "error:      %s\n", st.LastError)
				if st.LastTried.Hash == "" || st.LastTried.Hash == st.Live.Hash {
					fmt.Fprintln(f.IO.ErrOut, "the last good policy stays live; the gateway cannot read its policy source: check the source and the gateway's access to it (see the gateway log)")
				} else {
					fmt.Fprintln(f.IO.ErrOut, "the last good policy stays live; fix the commit on the branch and the gateway picks it up at the next poll")
				}
			}
			return stale
		},
	}
}

// count says "1 target" or "3 targets".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
