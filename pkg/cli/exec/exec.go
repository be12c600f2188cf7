// Package exec is `gatectl exec`: one request through the gateway.
package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
	"github.com/gatectl/gatectl/pkg/sqlclass"
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
A refusal by policy exits 3 and names the grant or rule; an error of the
target exits 1 with its SQLSTATE.

Results stream to stdout as they arrive, in the --output format:
  table  aligned columns under a header line (the default on a terminal),
         a blank line between results; in names and values, \\ and control
         characters are escaped: \n, \r, \t, \xHH, \uHHHH
  tsv    a header line, then rows in PostgreSQL's COPY text form: \t, \n,
         \r and \\ escaped, NULL as \N (the default otherwise)
  csv    RFC 4180, a header line per result and a blank line between
         results; NULL is an empty field, and a row of one empty field is ""
  json   an array with one object per statement: its columns, its rows as
         objects keyed by column (a repeated name gets a _2, _3… suffix),
         and its command tag; numbers, booleans and json columns are JSON
         values, everything else a string. A statement that fails has
         "error" in place of the command tag, after the rows that arrived
         before it failed: {"code": SQLSTATE, "message": …, "detail": …,
         "hint": …} (detail and hint when given)
Command tags, row counts, the target's notices and errors go to stderr; a
request that fails exits non-zero however much of it was printed.

The statements of -c or -f go to the target as one request, which
PostgreSQL runs as one transaction unless the request has its own BEGIN and
COMMIT: when a statement fails, the changes of those before it are rolled
back too. A request is refused whole if any of its statements is refused.

COPY … TO STDOUT writes its data to stdout; COPY … FROM STDIN reads it from
stdin. Either must be the only statement of the request.

Ctrl-C cancels the running statement on the target.`,
		Example: `  $ gatectl exec orders -c "SELECT id, status FROM orders LIMIT 5"
  $ gatectl exec orders -f report.sql --output csv > report.csv
  $ gatectl exec orders --reason "INC-42: refund" -c "SELECT * FROM orders WHERE id = 7"
  $ gatectl exec orders -c "SELECT count(*) FROM customers" --output json
  $ gatectl exec orders -c "COPY orders TO STDOUT WITH (FORMAT csv)" > orders.csv
  $ printf 'Ada,ada@example.com\n' | gatectl exec orders -c "COPY customers (name, email) FROM STDIN WITH (FORMAT csv)"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				// DESIGN's -- COMMAND is for SSH and Kubernetes targets.
				return cmdutil.Usagef("exec -- COMMAND is for SSH and Kubernetes targets, which this gateway does not serve yet; for a PostgreSQL target give the statements with -c or -f")
			}
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
			if err := cmdutil.CheckReason(opts.Reason); err != nil {
				return err
			}
			return run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Command, "command", "c", "", "statement(s) to run")
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "file of statements to run (- for stdin)")
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why you run this; recorded in the audit log")
	return cmd
}

// copyKind is what a request's COPY needs from the client, if anything.
type copyKind int

const (
	copyNone copyKind = iota
	copyOut           // COPY … TO STDOUT
	copyIn            // COPY … FROM STDIN
)

// requestCopy finds a COPY from or to the client in sql. The gateway
// classifies the request again and decides; this only picks how to carry
// the COPY data, so a request this cannot parse is sent as it is and the
// gateway's answer is reported.
func requestCopy(sql string) (copyKind, error) {
	if !strings.Contains(strings.ToLower(sql), "copy") {
		// No COPY without the word; spare the parser (WebAssembly in
		// builds without cgo, slow to start).
		return copyNone, nil
	}
	res, err := sqlclass.Classify(sql)
	if err != nil {
		return copyNone, nil
	}
	kind := copyNone
	for _, st := range res.Statements {
		switch {
		case st.CopyToStdout:
			kind = copyOut
		case st.CopyFromStdin:
			kind = copyIn
		default:
			continue
		}
		if len(res.Statements) > 1 {
			return copyNone, cmdutil.Usagef("COPY … TO STDOUT and COPY … FROM STDIN must be the only statement of the request; run the COPY with its own gatectl exec")
		}
	}
	return kind, nil
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
	kind, err := requestCopy(sql)
	if err != nil {
		return err
	}
	if kind == copyIn && opts.File == "-" {
		return cmdutil.Usagef("COPY … FROM STDIN reads its data from stdin, so the statement cannot come from it too; give it with -c or -f FILE")
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
	// Notices and warnings (RAISE NOTICE, "there is no transaction in
	// progress") go to stderr, as psql shows them.
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		fmt.Fprintf(f.IO.ErrOut, "%s:  %s\n", n.Severity, n.Message)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return cmdutil.PGError(err)
	}
	defer conn.Close(context.Background())

	switch kind {
	case copyOut:
		tag, err := conn.CopyTo(ctx, f.IO.Out, sql)
		return copyDone(f, tag, err)
	case copyIn:
		tag, err := conn.CopyFrom(ctx, f.IO.In, sql)
		return copyDone(f, tag, err)
	}
	return stream(ctx, f, conn, sql, format)
}

func copyDone(f *cmdutil.Factory, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return cmdutil.PGError(err)
	}
	fmt.Fprintln(f.IO.ErrOut, tag.String())
	return nil
}

// stream runs sql as one simple-protocol request and writes each result as
// it arrives: rows are never all held in memory (but a table's first rows
// are, to size its columns). The error that ends the request goes to the
// output too (JSON carries it) as well as being returned.
func stream(ctx context.Context, f *cmdutil.Factory, conn *pgconn.PgConn, sql string, format cmdutil.Format) error {
	out := newResultWriter(f.IO.Out, format)
	mrr := conn.Exec(ctx, sql)
	done := 0 // statements that completed
	var err error
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		fields := rr.FieldDescriptions()
		if fields != nil {
			err = out.begin(fields)
		}
		var rows int64
		for err == nil && rr.NextRow() {
			err = out.row(rr.Values())
			rows++
		}
		tag, rerr := rr.Close()
		if err == nil && rerr == nil {
			err = out.end(tag, fields != nil)
		}
		if err == nil {
			err = rerr
		}
		if err != nil {
			break
		}
		done++
		switch {
		case fields == nil:
			fmt.Fprintln(f.IO.ErrOut, tag.String())
		case rows == 1:
			fmt.Fprintln(f.IO.ErrOut, "(1 row)")
		default:
			fmt.Fprintf(f.IO.ErrOut, "(%d rows)\n", rows)
		}
	}
	if cerr := mrr.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// err may be the output's own (stdout closed): then this write
		// fails too, and err says why.
		out.fail(err)
	}
	if ferr := out.close(); err == nil {
		err = ferr
	}
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if done > 0 && errors.As(err, &pe) {
		fmt.Fprintf(f.IO.ErrOut, "note: statement %d of the request failed; PostgreSQL ran the request as one transaction, so the changes of the %d before it were rolled back too, except what the request committed itself\n", done+1, done)
	}
	return cmdutil.PGError(err)
}
