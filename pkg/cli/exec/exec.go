// Package exec is `gatectl exec`: one request through the gateway.
package exec

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
)

// Options are the flags and arguments of `gatectl exec`.
type Options struct {
	F       *cmdutil.Factory
	Target  string
	Command string // -c
	File    string // -f
	Reason  string
}

// NewCmd returns `gatectl exec`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "exec <target> [--reason TEXT] (-c STATEMENT | -f FILE)",
		Short: "Run statements on a target through the gateway",
		Long: `Run one request on a target through the gateway, as you: the gateway checks
your grant and its rules, injects the target's credential, and audits it.
Results go to stdout as a table on a terminal, TSV otherwise, or --output
json|csv. A refusal by policy exits 3 and names the grant or rule.`,
		Example: `  $ gatectl exec orders -c "SELECT id, status FROM orders LIMIT 5"
  $ gatectl exec orders -f report.sql --output csv > report.csv
  $ gatectl exec orders --reason "INC-42: refund" -c "SELECT * FROM orders WHERE id = 7"
  $ gatectl exec orders -c "SELECT count(*) FROM customers" --output json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.Usagef("exec takes one target, e.g. gatectl exec orders -c \"SELECT 1\"")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Target = args[0]
			if (opts.Command == "") == (opts.File == "") {
				return cmdutil.Usagef("give the statement with exactly one of -c STATEMENT or -f FILE")
			}
			return run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Command, "command", "c", "", "statement(s) to run")
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "file of statements to run (- for stdin)")
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why you run this; recorded in the audit log")
	return cmd
}

func run(ctx context.Context, opts *Options) error {
	f := opts.F
	sql := opts.Command
	if opts.File != "" {
		var b []byte
		var err error
		if opts.File == "-" {
			b, err = io.ReadAll(f.IO.In)
		} else {
			b, err = os.ReadFile(opts.File)
		}
		if err != nil {
			return cmdutil.Usagef("read -f: %v", err)
		}
		sql = string(b)
	}
	format, err := f.Format()
	if err != nil {
		return err
	}
	gpg, err := f.GatewayPostgres(ctx)
	if err != nil {
		return err
	}
	cfg, err := gpg.Config(opts.Target, "gatectl exec", opts.Reason)
	if err != nil {
		return err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return cmdutil.PGError(err)
	}
	defer conn.Close(context.Background())
	results, err := conn.Exec(ctx, sql).ReadAll()
	// Print what completed before an error: a refused second statement must
	// not hide the first one's result.
	if perr := printResults(f, format, results); perr != nil && err == nil {
		err = perr
	}
	for _, r := range results {
		if r.Err != nil && err == nil {
			err = r.Err
		}
	}
	if err != nil {
		return cmdutil.PGError(err)
	}
	return nil
}

func printResults(f *cmdutil.Factory, format cmdutil.Format, results []*pgconn.Result) error {
	if format == cmdutil.FormatJSON {
		type out struct {
			Command string           `json:"command"`
			Columns []string         `json:"columns,omitempty"`
			Rows    []map[string]any `json:"rows,omitempty"`
		}
		all := []out{}
		for _, r := range results {
			if r.Err != nil {
				continue
			}
			o := out{Command: r.CommandTag.String()}
			for _, fd := range r.FieldDescriptions {
				o.Columns = append(o.Columns, fd.Name)
			}
			for _, row := range r.Rows {
				m := make(map[string]any, len(row))
				for i, v := range row {
					if v == nil {
						m[o.Columns[i]] = nil
					} else {
						m[o.Columns[i]] = string(v)
					}
				}
				o.Rows = append(o.Rows, m)
			}
			all = append(all, o)
		}
		return cmdutil.WriteJSON(f.IO.Out, all)
	}
	for _, r := range results {
		if r.Err != nil {
			continue
		}
		if len(r.FieldDescriptions) == 0 {
			fmt.Fprintln(f.IO.ErrOut, r.CommandTag.String())
			continue
		}
		t := cmdutil.Table{}
		for _, fd := range r.FieldDescriptions {
			t.Header = append(t.Header, fd.Name)
		}
		for _, row := range r.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				cells[i] = string(v)
			}
			t.Rows = append(t.Rows, cells)
		}
		if err := t.Write(f.IO.Out, format); err != nil {
			return err
		}
		if n := len(r.Rows); n == 1 {
			fmt.Fprintln(f.IO.ErrOut, "(1 row)")
		} else {
			fmt.Fprintf(f.IO.ErrOut, "(%d rows)\n", n)
		}
	}
	return nil
}
