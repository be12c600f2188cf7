// Package connect is `gatectl connect`: a local PostgreSQL listener that
// takes no password and reaches a target through the gateway with the
// caller's token.
package connect

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/spf13/cobra"

	"github.com/gatectl/gatectl/pkg/api"
	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
	"github.com/gatectl/gatectl/pkg/client"
	"github.com/gatectl/gatectl/pkg/policy"
	pgproxy "github.com/gatectl/gatectl/pkg/proxy/postgres"
)

// Options are the flags and arguments of `gatectl connect`.
type Options struct {
	F      *cmdutil.Factory
	Target string
	Port   int
	Reason string
	Client []string // after --
}

// NewCmd returns `gatectl connect`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "connect <target> [--port N] [--reason TEXT] [-- CLIENT ARGS...]",
		Short: "Open a local listener for a native client to reach a target",
		Long: `Listen on 127.0.0.1 for a native client (psql, pgbench, an IDE) and carry its
connections to the target through the gateway with your token: you give the
local listener no password. Anyone who can reach the port on this machine
reaches the target as you while it listens.

connect first asks the gateway whether you may reach the target (as gatectl
targets does) and exits 3 if you may not. The listener reaches that target
only: a client must name it as the database, or name none (libpq then sends
the user name, which is taken as none); one that asks for another database is
refused.

With -- CLIENT ARGS, run the client with PGHOST, PGPORT, PGDATABASE and a
one-time PGPASSWORD set, and stop when it exits, with its exit code. The
listener then takes only that password, so other users of the machine cannot
borrow your access. The client does not get your token: GATECTL_TOKEN is
removed from its environment. Ctrl-C goes to the client (psql cancels its statement),
not to gatectl; SIGTERM and SIGHUP sent to gatectl are passed on to it.`,
		Example: `  $ gatectl connect orders -- psql
  $ gatectl connect orders --port 5433
  $ psql -h 127.0.0.1 -p 5433 orders`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() == 0 || len(args) == 0 {
				return cmdutil.Usagef("connect takes one target, e.g. gatectl connect orders -- psql")
			}
			if dash := cmd.ArgsLenAtDash(); dash > 1 || (dash < 0 && len(args) > 1) {
				return cmdutil.Usagef("connect takes one target; put the client command after --")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Target = args[0]
			if err := cmdutil.CheckReason(opts.Reason); err != nil {
				return err
			}
			if opts.Port < 0 || opts.Port > 65535 {
				return cmdutil.Usagef("--port %d is not a TCP port (1-65535, or 0 for any free one)", opts.Port)
			}
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				opts.Client = args[dash:]
			}
			return run(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Port, "port", 0, "local port to listen on (default: any free port)")
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why you connect; recorded in the audit log of each session")
	return cmd
}

func run(ctx context.Context, opts *Options) error {
	f := opts.F
	if err := checkReachable(ctx, f, opts.Target); err != nil {
		return err
	}
	gpg, err := f.GatewayPostgres(ctx)
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(gpg.Addr)
	tlsCfg, err := client.TLSConfig(gpg.CA, host)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)))
	if err != nil {
		return fmt.Errorf("listen on 127.0.0.1:%d: %w (pick another --port)", opts.Port, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	p := &localProxy{f: f, gateway: gpg.Addr, tls: tlsCfg, target: opts.Target, reason: opts.Reason}
	if len(opts.Client) > 0 {
		if p.password, err = oneTimePassword(); err != nil {
			ln.Close()
			return err
		}
		// The client, not gatectl, decides what an interrupt means: the
		// listener serves it until it exits.
		ctx = context.WithoutCancel(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.serve(ctx, ln)
	}()
	defer func() {
		ln.Close()
		cancel()
		wg.Wait()
	}()

	if len(opts.Client) == 0 {
		fmt.Fprintf(f.IO.ErrOut, "listening on 127.0.0.1:%d for target %q; connect with:\n  psql -h 127.0.0.1 -p %d %s\nCtrl-C to stop.\n", port, opts.Target, port, opts.Target)
		<-ctx.Done()
		return nil
	}
	cmd := exec.Command(opts.Client[0], opts.Client[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f.IO.In, f.IO.Out, f.IO.ErrOut
	cmd.Env = append(clientEnv(os.Environ()), "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(port), "PGDATABASE="+opts.Target,
		"PGSSLMODE=disable", "PGPASSWORD="+p.password)
	return runClient(cmd)
}

// checkReachable asks the gateway whether the caller may reach target, so
// that connect fails before it listens (or runs a client that would only
// show the gateway's refusal, with the client's exit code). It fails
// closed: an answer it cannot get is an error, never a pass. It says no
// more than GET /v1/targets does: a target without a grant and a target
// that does not exist get the same message.
func checkReachable(ctx context.Context, f *cmdutil.Factory, target string) error {
	c, err := f.Client()
	if err != nil {
		return err
	}
	var ts []api.Target
	if err := c.Do(ctx, http.MethodGet, "/v1/targets", nil, nil, &ts); err != nil {
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			return err // exit 4, with the gateway's reason
		}
		// %v, not %w: whatever the gateway answered, this is an error
		// (exit 1), not a decision about the caller.
		return fmt.Errorf("cannot check that you may reach target %q, so not connecting: %v", target, err)
	}
	for _, t := range ts {
		if t.Name != target {
			continue
		}
		if t.Kind != policy.TargetPostgres.String() {
			return &cmdutil.DeniedError{Msg: fmt.Sprintf("target %q is not a PostgreSQL target (kind %q); gatectl connect reaches PostgreSQL targets only", target, t.Kind)}
		}
		return nil
	}
	return &cmdutil.DeniedError{Msg: fmt.Sprintf("you may not reach target %q: no active grant gives you access to a target of that name; run `gatectl targets` to list the targets you may reach, or ask the target's owner for a grant", target)}
}

// runClient runs the client to its end and returns its exit status. A
// terminal sends Ctrl-C (SIGINT) and SIGQUIT to the client too, which acts
// on them itself, so gatectl ignores them meanwhile; SIGTERM and SIGHUP,
// which a supervisor sends to gatectl alone, are passed on.
func runClient(cmd *exec.Cmd) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", cmd.Args[0], err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGTERM || sig == syscall.SIGHUP {
				cmd.Process.Signal(sig)
			}
		case err := <-waited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				return err
			}
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				// As a shell reports a child killed by a signal.
				return &cmdutil.SilentError{Code: 128 + int(ws.Signal())}
			}
			return &cmdutil.SilentError{Code: ee.ExitCode()}
		}
	}
}

// oneTimePassword returns a random password for the client that connect
// runs.
func oneTimePassword() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make a one-time password for the client: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// clientEnv drops the libpq variables that would send the client somewhere
// else or make it present a password or certificate to the local listener,
// and the caller's token: the client reaches the target through the
// listener and its one-time password, and never needs the token.
func clientEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE",
			"PGSSLMODE", "PGSSLCERT", "PGSSLKEY", "PGSSLROOTCERT", "PGREQUIRESSL", "PGGSSENCMODE", "PGOPTIONS",
			"GATECTL_TOKEN":
			continue
		}
		out = append(out, kv)
	}
	return out
}

const (
	// loginTimeout bounds a local client's startup and password.
	loginTimeout = 30 * time.Second
	// maxPasswordMessage bounds the one message read from a local client
	// after its startup: the one-time password.
	maxPasswordMessage = 1024
)

// localProxy accepts local connections and carries each to the gateway.
type localProxy struct {
	f       *cmdutil.Factory
	gateway string
	tls     *tls.Config
	target  string
	reason  string
	// password, when set, is what a local client must send before
	// anything goes to the gateway.
	password string
}

func (p *localProxy) serve(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			// Stopping closes the connections too: one that sends nothing
			// must not keep gatectl from exiting.
			defer context.AfterFunc(ctx, func() { c.Close() })()
			// Errors after the listener stopped are those of its stopping.
			if err := p.handle(ctx, c); err != nil && ctx.Err() == nil {
				fmt.Fprintf(p.f.IO.ErrOut, "gatectl connect: %v\n", err)
			}
		}()
	}
}

// handle reads the local client's startup (answering SSL and GSS requests
// with 'N': the local hop is loopback), logs in to the gateway over TLS with
// the caller's token, then relays bytes both ways.
func (p *localProxy) handle(ctx context.Context, local net.Conn) error {
	// Bound the start-up: a local client gets loginTimeout to send its
	// startup message and password.
	local.SetDeadline(time.Now().Add(loginTimeout))
	be := pgproto3.NewBackend(local, local)
	be.SetMaxBodyLen(maxPasswordMessage)
	var startup *pgproto3.StartupMessage
	for startup == nil {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return nil // a client that went away before starting up
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := local.Write([]byte{'N'}); err != nil {
				return err
			}
		case *pgproto3.CancelRequest:
			return p.forwardCancel(ctx, m)
		case *pgproto3.StartupMessage:
			startup = m
		}
	}
	if p.password != "" {
		if err := p.checkPassword(be); err != nil {
			if errors.Is(err, errNoPassword) {
				return nil // a client that went away or sent garbage
			}
			return err
		}
	}
	// The listener reaches one target whatever database the client names:
	// a client that asks for another one (psql -d otherdb) is refused
	// rather than silently given this target. Empty is pgx's "no
	// preference", and the user name libpq's: a bare psql -h -p sends it.
	if db := startup.Parameters["database"]; db != "" && db != p.target && db != startup.Parameters["user"] {
		return p.fail(be, "3D000", fmt.Sprintf("this listener reaches only target %q, not %q; to reach another target, run gatectl connect OTHER (gatectl targets lists them)", p.target, truncate(db, 64)))
	}
	tok, err := p.f.Token()
	if err != nil {
		return p.fail(be, "28000", err.Error())
	}
	upstream, err := p.dial(ctx)
	if err != nil {
		return p.fail(be, "08006", err.Error())
	}
	defer upstream.Close()
	params := map[string]string{}
	for k, v := range startup.Parameters {
		params[k] = v
	}
	params["database"] = p.target
	if p.reason != "" {
		params[pgproxy.ReasonParam] = p.reason
	}
	fe := pgproto3.NewFrontend(upstream, upstream)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	if err := fe.Flush(); err != nil {
		return err
	}
	msg, err := fe.Receive()
	if err != nil {
		return p.fail(be, "08006", "gateway closed the connection: "+err.Error())
	}
	switch m := msg.(type) {
	case *pgproto3.AuthenticationCleartextPassword:
		fe.Send(&pgproto3.PasswordMessage{Password: tok})
		if err := fe.Flush(); err != nil {
			return err
		}
	case *pgproto3.ErrorResponse:
		be.Send(m)
		return be.Flush()
	default:
		return p.fail(be, "08P01", fmt.Sprintf("gateway asked for %T instead of the token", msg))
	}
	local.SetDeadline(time.Time{})
	// From here the gateway's answers (AuthenticationOk or an error) go to
	// the client as they are. The gateway sends nothing until it has the
	// password, so no bytes are left in fe's read buffer.
	done := make(chan struct{}, 2)
	go func() { io.Copy(upstream, local); upstream.CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(local, upstream); local.Close(); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// errNoPassword is a local client that went away, or sent something
// unreadable, instead of its password.
var errNoPassword = errors.New("local client sent no password")

// checkPassword asks the local client for the one-time password and
// refuses a client that does not send it.
func (p *localProxy) checkPassword(be *pgproto3.Backend) error {
	be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if err := be.Flush(); err != nil {
		return err
	}
	if err := be.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
		return err
	}
	msg, err := be.Receive()
	if err != nil {
		// Fail closed: whatever went wrong, this client did not show the
		// password.
		return errNoPassword
	}
	pw, ok := msg.(*pgproto3.PasswordMessage)
	if !ok || subtle.ConstantTimeCompare([]byte(pw.Password), []byte(p.password)) != 1 {
		return p.fail(be, "28P01", "this listener serves only the client that gatectl connect started (it sets PGPASSWORD for it)")
	}
	return nil
}

func (p *localProxy) dial(ctx context.Context) (*tls.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", p.gateway)
	if err != nil {
		return nil, fmt.Errorf("reach the gateway's PostgreSQL listener %s: %w", p.gateway, err)
	}
	// SSLRequest, then TLS.
	if _, err := raw.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
		raw.Close()
		return nil, err
	}
	var b [1]byte
	if _, err := io.ReadFull(raw, b[:]); err != nil || b[0] != 'S' {
		raw.Close()
		return nil, fmt.Errorf("the gateway at %s did not accept TLS", p.gateway)
	}
	c := tls.Client(raw, p.tls)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS with the gateway: %w (is GATECTL_CA set?)", err)
	}
	return c, nil
}

func (p *localProxy) forwardCancel(ctx context.Context, m *pgproto3.CancelRequest) error {
	c, err := p.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	buf, err := m.Encode(nil)
	if err != nil {
		return err
	}
	_, err = c.Write(buf)
	return err
}

// truncate shortens s, which the local client chose, for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

func (p *localProxy) fail(be *pgproto3.Backend, code, msg string) error {
	be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: code, Message: "gatectl connect: " + msg})
	be.Flush()
	return errors.New(msg)
}
