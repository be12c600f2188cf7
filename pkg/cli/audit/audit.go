// Package audit holds `gatectl audit`: tail, search, verify and export of
// the hash-chained audit log.
package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatectl/gatectl/pkg/api"
	"github.com/gatectl/gatectl/pkg/audit"
	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
	"github.com/gatectl/gatectl/pkg/client"
	"github.com/gatectl/gatectl/pkg/policy"
	"github.com/gatectl/gatectl/pkg/store/sqlite"
)

// NewCmd returns `gatectl audit`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit <command>",
		Short: "Read and verify the audit log (auditors and admins)",
		Long: `Read and verify the gateway's hash-chained audit log. Every authentication,
policy load and decision is an event naming who, what, which target, which
rule and which policy commit. Auditors and admins of gatectl.toml only.`,
		RunE: cmdutil.GroupRunE,
	}
	cmd.AddCommand(newTailCmd(f), newSearchCmd(f), newVerifyCmd(f), newExportCmd(f))
	return cmd
}

// filterFlags are the event filters shared by search and export.
type filterFlags struct {
	principal, action, target, decision, session string
	since, until                                 string
	limit                                        int
}

func (ff *filterFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&ff.principal, "principal", "", "only events of this principal (user:alice, service:etl)")
	fl.StringVar(&ff.action, "action", "", "only events of this action (auth.refuse, policy.load, statement, ...)")
	fl.StringVar(&ff.target, "target", "", "only events about this target")
	fl.StringVar(&ff.decision, "decision", "", "only events with this decision (allow, deny, error, ...)")
	fl.StringVar(&ff.session, "session", "", "only events of this session")
	fl.StringVar(&ff.since, "since", "", "only events since a time (RFC 3339) or a duration ago (90m, 7d)")
	fl.StringVar(&ff.until, "until", "", "only events before a time (RFC 3339) or a duration ago")
}

func (ff *filterFlags) query(now time.Time) (url.Values, error) {
	q := url.Values{}
	for k, v := range map[string]string{"principal": ff.principal, "action": ff.action, "target": ff.target, "decision": ff.decision, "session": ff.session} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for k, v := range map[string]string{"since": ff.since, "until": ff.until} {
		if v == "" {
			continue
		}
		t, err := parseWhen(v, now)
		if err != nil {
			return nil, cmdutil.Usagef("--%s: %v", k, err)
		}
		q.Set(k, t.UTC().Format(time.RFC3339Nano))
	}
	if ff.limit > 0 {
		q.Set("limit", strconv.Itoa(ff.limit))
	}
	return q, nil
}

// parseWhen reads an RFC 3339 time or a duration before now ("7d").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := policy.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration like 90m or 7d", s)
	}
	return now.Add(-time.Duration(d)), nil
}

// fetch streams events from the gateway, calling fn for each.
func fetch(ctx context.Context, f *cmdutil.Factory, q url.Values, fn func(audit.Event) error) error {
	c, err := f.Client()
	if err != nil {
		return err
	}
	body, err := c.Stream(ctx, "/v1/audit", q)
	if err != nil {
		return err
	}
	defer body.Close()
	dec := json.NewDecoder(bufio.NewReader(body))
	for {
		var e audit.Event
		if err := dec.Decode(&e); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read audit stream: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

func eventTable() *cmdutil.Table {
	return &cmdutil.Table{Header: []string{"SEQ", "TIME", "PRINCIPAL", "ACTION", "TARGET", "DECISION", "RULE", "REASON"}}
}

func addEvent(t *cmdutil.Table, e audit.Event) {
	t.Add(strconv.FormatInt(e.Seq, 10), e.Time.Local().Format("2006-01-02 15:04:05"), e.Principal, e.Action, e.Target, e.Decision, e.Rule, e.Reason)
}

func writeEvents(f *cmdutil.Factory, events []audit.Event) error {
	format, err := f.Format()
	if err != nil {
		return err
	}
	if format == cmdutil.FormatJSON {
		if events == nil {
			events = []audit.Event{}
		}
		return cmdutil.WriteJSON(f.IO.Out, events)
	}
	t := eventTable()
	for _, e := range events {
		addEvent(t, e)
	}
	return t.Write(f.IO.Out, format)
}

func newTailCmd(f *cmdutil.Factory) *cobra.Command {
	var n int
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail [-n N] [-f]",
		Short: "Show the newest audit events",
		Long: `Show the newest audit events, oldest of them first. With -f, keep printing
events as they are written, over one stream that the gateway audits as one
read; -n 0 -f prints only events written from now on. Ctrl-C stops.`,
		Example: `  $ gatectl audit tail
  $ gatectl audit tail -n 100 -f
  $ gatectl audit tail -n 0 -f --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 0 {
				return cmdutil.Usagef("-n must be 0 or more, not %d", n)
			}
			ctx := cmd.Context()
			var events []audit.Event
			// -n 0 still reads the newest event, to follow from it.
			q := url.Values{"desc": {"true"}, "limit": {strconv.Itoa(max(n, 1))}}
			if err := fetch(ctx, f, q, func(e audit.Event) error { events = append(events, e); return nil }); err != nil {
				return err
			}
			slices.Reverse(events)
			var last int64
			if len(events) > 0 {
				last = events[len(events)-1].Seq
			}
			if n == 0 {
				events = nil
			}
			if n > 0 || !follow {
				if err := writeEvents(f, events); err != nil || !follow {
					return err
				}
			}
			return followEvents(ctx, f, last)
		},
	}
	cmd.Flags().IntVarP(&n, "lines", "n", 20, "how many events to show")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events as they are written")
	return cmd
}

// followEvents prints the events after seq last as the gateway streams
// them, until ctx ends. When the stream breaks (the gateway restarted), it
// says so on stderr and reconnects.
func followEvents(ctx context.Context, f *cmdutil.Factory, last int64) error {
	format, _ := f.Format()
	out := func(e audit.Event) error {
		last = e.Seq
		if format == cmdutil.FormatJSON {
			return json.NewEncoder(f.IO.Out).Encode(e)
		}
		t := eventTable()
		t.Header = nil
		addEvent(t, e)
		return t.WriteRows(f.IO.Out, format)
	}
	for {
		q := url.Values{"after": {strconv.FormatInt(last, 10)}, "follow": {"true"}}
		err := fetch(ctx, f, q, out)
		if ctx.Err() != nil {
			return nil
		}
		var ae *cmdutil.AuthError
		var refused *client.Error
		if errors.As(err, &ae) || errors.As(err, &refused) {
			return err // the gateway answered: waiting will not change it
		}
		why := "the gateway ended the stream"
		if err != nil {
			why = err.Error()
		}
		fmt.Fprintf(f.IO.ErrOut, "gatectl: %s; reconnecting in 2s (Ctrl-C stops)\n", why)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

func newSearchCmd(f *cmdutil.Factory) *cobra.Command {
	ff := &filterFlags{}
	cmd := &cobra.Command{
		Use:   "search [filters]",
		Short: "Find audit events",
		Long: `Find the newest audit events that match every filter given, and print them
oldest first. When more match than --limit, stderr says so.`,
		Example: `  $ gatectl audit search --action auth.refuse --since 1h
  $ gatectl audit search --principal service:etl --target orders --output json
  $ gatectl audit search --session s-1a2b3c --limit 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ff.limit < 0 {
				return cmdutil.Usagef("--limit must be 0 (no limit) or more, not %d", ff.limit)
			}
			q, err := ff.query(time.Now())
			if err != nil {
				return err
			}
			q.Set("desc", "true")
			var events []audit.Event
			if err := fetch(cmd.Context(), f, q, func(e audit.Event) error { events = append(events, e); return nil }); err != nil {
				return err
			}
			slices.Reverse(events)
			if ff.limit > 0 && len(events) == ff.limit {
				fmt.Fprintf(f.IO.ErrOut, "showing the newest %d matching events; there may be more: narrow the filters, or raise --limit (0 for all)\n", ff.limit)
			}
			return writeEvents(f, events)
		},
	}
	ff.register(cmd)
	cmd.Flags().IntVar(&ff.limit, "limit", 1000, "at most this many events, the newest (0: no limit)")
	return cmd
}

func newExportCmd(f *cmdutil.Factory) *cobra.Command {
	ff := &filterFlags{}
	cmd := &cobra.Command{
		Use:   "export [filters]",
		Short: "Export audit events as JSON lines",
		Long: `Write audit events to stdout as JSON lines, one event per line with its seq,
prev and hash, so a copy kept elsewhere can be checked against the chain.`,
		Example: `  $ gatectl audit export > audit.jsonl
  $ gatectl audit export --since 7d --action statement`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := ff.query(time.Now())
			if err != nil {
				return err
			}
			w := bufio.NewWriter(f.IO.Out)
			enc := json.NewEncoder(w)
			n := 0
			err = fetch(cmd.Context(), f, q, func(e audit.Event) error { n++; return enc.Encode(e) })
			if ferr := w.Flush(); err == nil {
				err = ferr
			}
			if err == nil {
				fmt.Fprintf(f.IO.ErrOut, "exported %d events\n", n)
			}
			return err
		},
	}
	ff.register(cmd)
	return cmd
}

func newVerifyCmd(f *cmdutil.Factory) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "verify [--data-dir DIR]",
		Short: "Check the audit log's hash chain",
		Long: `Walk the audit log's hash chain and report the first event that was edited,
removed or reordered. Without --data-dir the gateway checks its own store;
with --data-dir gatectl opens the store in that directory itself (for an
auditor on the gateway's host, or a copy of it). Exits 0 when the chain is
intact, 1 otherwise.`,
		Example: `  $ gatectl audit verify
  $ gatectl audit verify --data-dir /var/lib/gatectl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var rep api.VerifyReport
			if dataDir != "" {
				db, err := sqlite.Open(filepath.Join(dataDir, "gatectl.db"))
				if err != nil {
					return err
				}
				defer db.Close()
				r, err := audit.Verify(cmd.Context(), db.Audit())
				if err != nil {
					return err
				}
				rep = api.VerifyReport{OK: r.Problem == "", Events: r.Events, FirstBad: r.FirstBad, Problem: r.Problem}
			} else {
				c, err := f.Client()
				if err != nil {
					return err
				}
				if err := c.Do(cmd.Context(), http.MethodGet, "/v1/audit/verify", nil, nil, &rep); err != nil {
					return err
				}
			}
			format, err := f.Format()
			if err != nil {
				return err
			}
			if format == cmdutil.FormatJSON {
				if err := cmdutil.WriteJSON(f.IO.Out, rep); err != nil {
					return err
				}
				if !rep.OK {
					return &cmdutil.SilentError{Code: cmdutil.ExitError}
				}
				return nil
			}
			if !rep.OK {
				return fmt.Errorf("audit log is NOT intact: %s (%d events before it verified)", rep.Problem, rep.Events)
			}
			fmt.Fprintf(f.IO.Out, "audit log intact: %d events, hash chain verified\n", rep.Events)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "verify the store in this gateway data dir directly")
	return cmd
}
