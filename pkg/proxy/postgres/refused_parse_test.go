package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestRefusedPrepareWithPgx: a refused Parse was answered with
// ParseComplete and then the refusal, which pgx reports as "prepare failed
// after ParseComplete"; PostgreSQL answers a Parse that fails with the
// error alone. The connection goes on, and pgx, which then believes the
// name free, can prepare under it again: the refusal again, or an allowed
// statement.
func TestRefusedPrepareWithPgx(t *testing.T) { forTransports(t, testRefusedPrepareWithPgx) }

func testRefusedPrepareWithPgx(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	conn := g.connect(t, nil)
	ctx := context.Background()
	const del = "DELETE FROM scratch WHERE note = 'prep'"
	for i := range 2 {
		_, err := conn.Prepare(ctx, "del", del)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != codeInsufficientPriv || pe.Hint != RefusalHint {
			t.Fatalf("prepare %d of a refused statement: got %v, want the gateway's 42501", i, err)
		}
		var prepErr *pgconn.PrepareError
		if strings.Contains(err.Error(), "after ParseComplete") || errors.As(err, &prepErr) && prepErr.ParseComplete {
			t.Errorf("prepare %d: got %q, want no ParseComplete before the error", i, err)
		}
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("after refused prepare %d: got %d, %v; want 1", i, one, err)
		}
	}
	// The default mode prepares under a name of the text's hash: the same
	// refused statement twice is refused twice, not a duplicate statement.
	for i := range 2 {
		if _, err := conn.Exec(ctx, del); pgCode(err) != codeInsufficientPriv {
			t.Fatalf("exec %d of a refused statement: got %v, want 42501", i, err)
		}
	}
	if _, err := conn.Prepare(ctx, "del", "SELECT 'now-allowed'"); err != nil {
		t.Fatalf("prepare of an allowed statement under the refused one's name: %v", err)
	}
	var got string
	if err := conn.QueryRow(ctx, "del").Scan(&got); err != nil || got != "now-allowed" {
		t.Fatalf("run of the statement prepared under the refused one's name: got %q, %v", got, err)
	}
}

// TestRefusedParseHasNoParseComplete reads the raw answers to a refused
// Parse: the error and ReadyForQuery, no ParseComplete ('1') and no
// BindComplete ('2'), as PostgreSQL answers a Parse that fails. A Bind of
// the refused statement still raises the refusal (at its Execute), and a
// later Parse of the name is answered as for a free name.
func TestRefusedParseHasNoParseComplete(t *testing.T) {
	forTransports(t, testRefusedParseHasNoParseComplete)
}

func testRefusedParseHasNoParseComplete(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	const del = "DELETE FROM scratch WHERE note = 'raw'"
	rc := dialRaw(t, g, plain, nil)
	waitReadyAfterLogin(t, rc)
	steps := []struct {
		name string
		msgs []pgproto3.FrontendMessage
		want string
	}{
		{"refused-parse", msgs{&P{Name: "rp", Query: del}, &S{}}, "E42501 Z"},
		{"refused-parse-describe", msgs{&P{Name: "rp2", Query: del}, &D{ObjectType: 'S', Name: "rp2"}, &S{}}, "E42501 Z"},
		{"refused-unnamed-parse-bind-execute", msgs{&P{Query: del}, &B{}, &E{}, &S{}}, "E42501 Z"},
		{"bind-of-refused", msgs{&B{PreparedStatement: "rp"}, &E{}, &S{}}, "2 E42501 Z"},
		{"refused-parse-again", msgs{&P{Name: "rp", Query: del}, &S{}}, "E42501 Z"},
		{"allowed-parse-of-the-name", msgs{&P{Name: "rp", Query: "SELECT 'rp-ok'"}, &B{PreparedStatement: "rp"}, &E{}, &S{}}, "1 2 D C Z"},
		{"parse-of-a-taken-name", msgs{&P{Name: "rp", Query: "SELECT 'rp-dup'"}, &S{}}, "E42P05 Z"},
		{"close-then-refused-parse", msgs{&Cl{ObjectType: 'S', Name: "rp"}, &P{Name: "rp", Query: del}, &S{}}, "3 E42501 Z"},
	}
	for _, st := range steps {
		if _, err := rc.conn.Write(encode(t, st.msgs...)); err != nil {
			t.Fatal(err)
		}
		if got := readTypes(t, rc); got != st.want {
			t.Errorf("%s: got %q, want %q", st.name, got, st.want)
		}
	}
}

// readTypes reads backend messages up to ReadyForQuery and returns their
// types, with the SQLSTATE after an ErrorResponse's E.
func readTypes(t *testing.T, rc *rawClient) string {
	t.Helper()
	got, ended := readStep(rc, false)
	if ended {
		t.Fatalf("read: the connection ended (seen %q)", got)
	}
	return got
}

// readStep reads backend messages up to ReadyForQuery and returns their
// types, with the SQLSTATE after an ErrorResponse's E and, with rows, each
// DataRow's first column after its D ("D:value"). ParameterStatus and
// NoticeResponse are left out. ended says the connection ended first
// ("EOF" is then the last answer).
func readStep(rc *rawClient, rows bool) (answers string, ended bool) {
	rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []string
	for {
		msg, err := rc.fe.Receive()
		if err != nil {
			return strings.Join(append(got, "EOF"), " "), true
		}
		switch m := msg.(type) {
		case *pgproto3.ParseComplete:
			got = append(got, "1")
		case *pgproto3.BindComplete:
			got = append(got, "2")
		case *pgproto3.CloseComplete:
			got = append(got, "3")
		case *pgproto3.DataRow:
			switch {
			case !rows:
				got = append(got, "D")
			case len(m.Values) > 0 && m.Values[0] != nil:
				got = append(got, "D:"+string(m.Values[0]))
			default:
				got = append(got, "D:NULL")
			}
		case *pgproto3.CommandComplete:
			got = append(got, "C")
		case *pgproto3.ParameterDescription:
			got = append(got, "t")
		case *pgproto3.NoData:
			got = append(got, "n")
		case *pgproto3.RowDescription:
			got = append(got, "T")
		case *pgproto3.EmptyQueryResponse:
			got = append(got, "I")
		case *pgproto3.ErrorResponse:
			got = append(got, "E"+m.Code)
		case *pgproto3.ParameterStatus, *pgproto3.NoticeResponse:
		case *pgproto3.ReadyForQuery:
			return strings.Join(append(got, "Z"), " "), false
		default:
			got = append(got, "?")
		}
	}
}

// TestUnknownMessageTypeIsRefused: a frontend message of a type outside
// the protocol was forwarded to the target, which ended the session (the
// audit said target-lost). The gateway now refuses it itself with FATAL
// 08P01 naming the type, and the session ends as protocol-error.
func TestUnknownMessageTypeIsRefused(t *testing.T) { forTransports(t, testUnknownMessageTypeIsRefused) }

func testUnknownMessageTypeIsRefused(t *testing.T, plain bool) {
	g := startGateway(t, gatewayOptions{plainClients: plain})
	for _, typ := range []byte{'y', 0, 'p', 0xff} {
		rc := dialRaw(t, g, plain, nil)
		waitReadyAfterLogin(t, rc)
		if _, err := rc.conn.Write([]byte{typ, 0, 0, 0, 8, 'a', 'b', 'c', 0}); err != nil {
			t.Fatal(err)
		}
		rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		msg, err := rc.fe.Receive()
		e, ok := msg.(*pgproto3.ErrorResponse)
		if err != nil || !ok || e.Code != codeProtocolViolation || e.Severity != "FATAL" ||
			!strings.Contains(e.Message, "invalid frontend message type "+strconv.QuoteRune(rune(typ))) {
			t.Errorf("type %q: got %#v, %v; want FATAL 08P01 naming the type", typ, msg, err)
		}
		rc.conn.Close()
		select {
		case stats := <-g.rec.ends:
			if stats.Reason != reasonProtocolError {
				t.Errorf("type %q: session ended as %q, want %q", typ, stats.Reason, reasonProtocolError)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("session did not end")
		}
	}
}

// endingChecker ends the session at "SELECT 'end'" with EndCode and
// EndReason, as the gateway does for an expired token.
type endingChecker struct{ code, reason string }

func (c endingChecker) TryCheck(sql string) (Verdict, bool) {
	return c.Check(context.Background(), sql), true
}

func (c endingChecker) Check(ctx context.Context, sql string) Verdict {
	if sql == "SELECT 'end'" {
		return Verdict{EndCode: c.code, EndReason: c.reason, Message: "the session is over"}
	}
	return testChecker{}.Check(ctx, sql)
}

// TestEndReasonOfAVerdict: a session that a Verdict's EndCode ends (an
// expired token, a removed grant) ended as "refused", like any refusal;
// session.end now says the Verdict's EndReason.
func TestEndReasonOfAVerdict(t *testing.T) {
	for _, tt := range []struct{ code, reason, want string }{
		{"28000", "token-expired", "token-expired"},
		{codeInsufficientPriv, "grant-removed", "grant-removed"},
		{codeInsufficientPriv, "", reasonRefused},
	} {
		t.Run(tt.want, func(t *testing.T) {
			forTransports(t, func(t *testing.T, plain bool) {
				g := startGateway(t, gatewayOptions{plainClients: plain, checker: endingChecker{tt.code, tt.reason}})
				conn := g.connect(t, nil)
				_, err := conn.Exec(context.Background(), "SELECT 'end'", pgx.QueryExecModeSimpleProtocol)
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != tt.code || pe.Severity != "FATAL" {
					t.Fatalf("got %v, want FATAL %s", err, tt.code)
				}
				select {
				case stats := <-g.rec.ends:
					if stats.Reason != tt.want {
						t.Errorf("session ended as %q, want %q", stats.Reason, tt.want)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("session did not end")
				}
			})
		})
	}
}

// TestReparseOfARefusedNameInOnePipeline: the Close the gateway puts
// before a re-Parse of a refused name is sent only once the refused Parse
// is answered (a review's finding). Pipelined in one write, the refused
// Parse fails on the target as a duplicate (the name holds 'cf-one'), and
// the re-Parse must too, as PostgreSQL alone answers, rather than have a
// Close the gateway decided too early drop 'cf-one' so that 'cf-two' runs.
func TestReparseOfARefusedNameInOnePipeline(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		del := "DELETE FROM scratch WHERE note = 'cf'"
		runPipeline(t, g, plain, []step{
			{msgs{&P{Name: "cf", Query: "SELECT 'cf-one'"}, &S{}, &P{Name: "cf", Query: del}, &S{},
				&P{Name: "cf", Query: "SELECT 'cf-two'"}, &B{PreparedStatement: "cf"}, &E{}, &S{}}, "ready", 3},
			{msgs{&B{PreparedStatement: "cf"}, &E{}, &S{}}, "ready", 1},
		}, []pev{
			{KindParse, del, "42P05", false, false},
			{KindExecute, "SELECT 'cf-two'", "", false, true},
			{KindExecute, "SELECT 'cf-one'", "", true, true},
		})
	})
}
