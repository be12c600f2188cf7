package postgres

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// utf8Checker is testChecker behind the real classifier's first step: text
// that is not UTF-8 cannot be parsed, so it is refused (fail closed).
type utf8Checker struct{}

func (c utf8Checker) TryCheck(sql string) (Verdict, bool) {
	return c.Check(context.Background(), sql), true
}

func (utf8Checker) Check(ctx context.Context, sql string) Verdict {
	if !utf8.ValidString(sql) {
		return Verdict{Message: "statement could not be classified: string field contains invalid UTF-8"}
	}
	return testChecker{}.Check(ctx, sql)
}

// pgconnWith connects to g with pgconn and extra startup parameters, so
// that statements go out as the bytes given, in any client_encoding.
func (g *gateway) pgconnWith(t *testing.T, params map[string]string) *pgconn.PgConn {
	t.Helper()
	cfg := g.pgxConfig(t, goodToken, g.sslmode, nil).Config.Copy()
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect through gateway with %v: %v", params, err)
	}
	t.Cleanup(func() { pc.Close(context.Background()) })
	return pc
}

// encodingCases are literals in a client encoding other than UTF8 and
// their UTF-8 rendering.
var encodingCases = []struct {
	name, enc, lit, utf8 string
}{
	{"latin1", "LATIN1", "caf\xe9", "café"},
	{"win1252", "WIN1252", "\x80uro", "€uro"},
	{"euc-jp", "EUC_JP", "\xc6\xfc\xcb\xdc", "日本"},
}

// checkEncodedStatements runs statements holding lit in pc's client
// encoding, simple and extended, and a DELETE the checker refuses: the
// target gets the client's bytes (the rows come back in them), and the
// checker and the audit get the UTF-8 rendering.
func checkEncodedStatements(t *testing.T, g *gateway, pc *pgconn.PgConn, lit, rendered string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := len(g.rec.statements())
	res, err := pc.Exec(ctx, "SELECT '"+lit+"' AS v, length('"+lit+"') AS n").ReadAll()
	if err != nil {
		t.Fatalf("simple query: %v", err)
	}
	if got, want := string(res[0].Rows[0][0])+" "+string(res[0].Rows[0][1]), lit+" "+strconv.Itoa(utf8.RuneCountInString(rendered)); got != want {
		t.Errorf("simple query returned %q, want %q", got, want)
	}
	rr := pc.ExecParams(ctx, "SELECT '"+lit+"' || $1::text", [][]byte{[]byte(lit)}, nil, nil, nil).Read()
	if rr.Err != nil {
		t.Fatalf("extended query: %v", rr.Err)
	}
	if got, want := string(rr.Rows[0][0]), lit+lit; got != want {
		t.Errorf("extended query returned %q, want %q", got, want)
	}
	if _, err := pc.Prepare(ctx, "enc_s", "SELECT '"+lit+"' AS named", nil); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	for range 2 {
		rr = pc.ExecPrepared(ctx, "enc_s", nil, nil, nil).Read()
		if rr.Err != nil || len(rr.Rows) != 1 || string(rr.Rows[0][0]) != lit {
			t.Errorf("prepared statement: rows %q, err %v; want %q", rr.Rows, rr.Err, lit)
		}
	}
	if _, err := pc.Exec(ctx, "DEALLOCATE enc_s").ReadAll(); err != nil {
		t.Fatal(err)
	}
	_, err = pc.Exec(ctx, "DELETE FROM scratch WHERE note = '"+lit+"'").ReadAll()
	if code := pgCode(err); code != "42501" || !strings.Contains(err.Error(), "deletes need an approval") {
		t.Errorf("DELETE with a non-ASCII literal: %v, want the checker's refusal (42501)", err)
	}

	want := []pev{
		{KindQuery, "SELECT '" + rendered + "' AS v, length('" + rendered + "') AS n", "", true, true},
		{KindExecute, "SELECT '" + rendered + "' || $1::text", "", true, true},
		{KindExecute, "SELECT '" + rendered + "' AS named", "", true, true},
		{KindExecute, "SELECT '" + rendered + "' AS named", "", true, true},
		{KindQuery, "DEALLOCATE enc_s", "", true, true},
		{KindQuery, "DELETE FROM scratch WHERE note = '" + rendered + "'", "42501", true, false},
	}
	got := eventsSince(g, before)
	if len(got) != len(want) {
		t.Fatalf("audit events %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("audit event %d: %q, want %q", i, got[i], want[i])
		}
		if !utf8.ValidString(got[i].text) {
			t.Errorf("audit event %d text is not UTF-8: %q", i, got[i].text)
		}
	}
}

// TestClientEncodingAtStartup: a client whose client_encoding is a server
// encoding other than UTF8 logs in, and its statements with non-ASCII
// characters run; they used to be refused as text the classifier could not
// read (invalid UTF-8).
func TestClientEncodingAtStartup(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain, checker: utf8Checker{}})
		for _, c := range encodingCases {
			t.Run(c.name, func(t *testing.T) {
				pc := g.pgconnWith(t, map[string]string{"client_encoding": c.enc})
				if got := pc.ParameterStatus("client_encoding"); got != c.enc {
					t.Fatalf("client_encoding %q, want %q", got, c.enc)
				}
				checkEncodedStatements(t, g, pc, c.lit, c.utf8)
			})
		}
	})
}

// TestClientEncodingSetMidSession: the session follows SET
// client_encoding and RESET (the target's ParameterStatus).
func TestClientEncodingSetMidSession(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain, checker: utf8Checker{}})
		pc := g.pgconnWith(t, nil)
		ctx := context.Background()
		for _, c := range encodingCases {
			t.Run(c.name, func(t *testing.T) {
				if _, err := pc.Exec(ctx, "SET client_encoding = '"+c.enc+"'").ReadAll(); err != nil {
					t.Fatal(err)
				}
				checkEncodedStatements(t, g, pc, c.lit, c.utf8)
			})
		}
		if _, err := pc.Exec(ctx, "RESET client_encoding").ReadAll(); err != nil {
			t.Fatal(err)
		}
		// UTF8 again: UTF-8 text is read as it is.
		checkEncodedStatements(t, g, pc, "Zoë", "Zoë")
	})
}

// TestNonASCIINamesOutsideUTF8: while the client_encoding is not UTF8, a
// non-ASCII statement or portal name is refused (a review's finding). The
// target converts such a name to the server's encoding, where it may also
// pass 63 bytes and be cut, while the names the gateway learns from SQL
// (PREPARE, DECLARE, FETCH) come from its UTF-8 rendering: FETCH ALL FROM
// "\xe9hp" read the Bind's portal "\xe9hp" unchecked, and PREPARE "\xe9zz"
// replaced a Parse of that name without the gateway knowing. In UTF8 the
// names are the target's own bytes and still work.
func TestNonASCIINamesOutsideUTF8(t *testing.T) {
	g := startGateway(t, gatewayOptions{checker: utf8Checker{}})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(pc *pgconn.PgConn) error
	}{
		{"parse", func(pc *pgconn.PgConn) error {
			_, err := pc.Prepare(ctx, "\xe9zz", "SELECT 1", nil)
			return err
		}},
		{"bind", func(pc *pgconn.PgConn) error {
			_, err := pc.Exec(ctx, "BEGIN").ReadAll()
			if err == nil {
				pc.Frontend().SendParse(&pgproto3.Parse{Query: "SELECT 'bound'"})
				pc.Frontend().SendBind(&pgproto3.Bind{DestinationPortal: "\xe9hp"})
				pc.Frontend().SendSync(&pgproto3.Sync{})
				err = pc.Frontend().Flush()
			}
			if err == nil {
				err = readToReady(pc)
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := g.pgconnWith(t, map[string]string{"client_encoding": "LATIN1"})
			if err := tc.run(pc); pgCode(err) != codeFeatureNotSupported || !strings.Contains(err.Error(), "not ASCII") {
				t.Errorf("LATIN1: got %v, want 0A000 refusing the non-ASCII name", err)
			}
		})
	}
	pc := g.pgconnWith(t, nil)
	if _, err := pc.Prepare(ctx, "été", "SELECT 1", nil); err != nil {
		t.Errorf("UTF8: Prepare of a non-ASCII name: %v", err)
	}
}

// readToReady reads pc's messages up to ReadyForQuery and returns the
// first error the target or the gateway sent.
func readToReady(pc *pgconn.PgConn) error {
	var first error
	for {
		m, err := pc.ReceiveMessage(context.Background())
		if err != nil {
			if first != nil {
				return first
			}
			return err
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			if first == nil {
				first = pgconn.ErrorResponseToPgError(m)
			}
		case *pgproto3.ReadyForQuery:
			return first
		}
	}
}
