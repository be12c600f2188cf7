package postgres

// Found by a review of this session's relay changes; each failed before
// its fix.

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// expiringChecker ends the session (as pgChecker does for an expired
// token) once expired is set.
type expiringChecker struct{ expired atomic.Bool }

func (c *expiringChecker) TryCheck(sql string) (Verdict, bool) {
	return c.Check(context.Background(), sql), true
}

func (c *expiringChecker) Check(ctx context.Context, sql string) Verdict {
	if c.expired.Load() {
		return Verdict{EndCode: "28000", Message: "your token expired; the session is closed"}
	}
	return testChecker{}.Check(ctx, sql)
}

// TestHoldCursorIsRechecked: an Execute in a later read than its Bind
// is checked again, so that a portal read in parts stops when the token
// expires. A WITH HOLD cursor outlives its transaction; its record used to
// be swept at the next ReadyForQuery 'I', after which its Execute was
// allowed unchecked, and rows kept coming after the token expired.
func TestHoldCursorIsRechecked(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		c := &expiringChecker{}
		g := startGateway(t, gatewayOptions{plainClients: plain, checker: c})
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t,
			&Q{String: "DECLARE c CURSOR WITH HOLD FOR SELECT name FROM items ORDER BY id"},
			&Q{String: "SELECT 1"}))}
		p.readUntil(t, "ready", 2)
		// Read the cursor in parts while the token is valid.
		p.rc.conn.Write(encode(t, &E{Portal: "c", MaxRows: 1}, &S{}))
		if got := firstRowOrError(t, p); got != "row item 1" {
			t.Fatalf("first part: %q", got)
		}
		p.readUntil(t, "ready", 1)
		c.expired.Store(true)
		p.rc.conn.Write(encode(t, &E{Portal: "c", MaxRows: 1}, &S{}))
		got := firstRowOrError(t, p)
		t.Logf("Execute of the WITH HOLD cursor after the token expired: %s; events %v", got, eventsSince(g, 0))
		if got != "FATAL 28000" {
			t.Errorf("after the token expired the cursor still returned %q; want FATAL 28000", got)
		}
	})
}

// TestBigBatchWithEarlyError: a pgx batch (Bind, Describe, Execute per
// query, one Sync) whose first query fails. The target skips the rest up
// to the Sync; the client legitimately keeps writing its batch. Past
// maxSkipped (65536) queued messages while skipping, the session is now
// ended with FATAL 54000 instead of the client getting its error.
func TestBigBatchWithEarlyError(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		conn := g.connect(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		b := &pgx.Batch{}
		b.Queue("SELECT 1/0")
		for i := range 100000 {
			b.Queue("SELECT $1::int", i)
		}
		br := conn.SendBatch(ctx, b)
		_, err := br.Exec()
		br.Close()
		if code := pgCode(err); code != "22012" {
			t.Errorf("first query of a 100000-query batch: %v (code %q), want the division by zero (22012)", err, code)
		}
		if err := conn.Ping(ctx); err != nil {
			t.Errorf("the session did not survive a failed batch: %v", err)
		}
	})
}

// TestTargetContextIsKept: the CONTEXT field is cut only from the
// gateway's own refusals. It used to be judged by the queue head after the
// failed request was popped (a Sync, whose zero verdict read as refused),
// so the target's own 42501 errors lost their CONTEXT in the extended
// protocol.
func TestTargetContextIsKept(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		conn := g.connect(t, nil)
		ctx := context.Background()
		if _, err := conn.Exec(ctx, `CREATE FUNCTION pg_temp.rev3_f() RETURNS int LANGUAGE plpgsql AS
			$$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'no access to the ledger'; END$$`); err != nil {
			t.Fatal(err)
		}
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
			_, err := conn.Exec(ctx, "SELECT pg_temp.rev3_f() WHERE $1::int = 1", mode, 1)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42501" {
				t.Fatalf("%v: %v", mode, err)
			}
			t.Logf("%v: where=%q", mode, pe.Where)
			if !strings.Contains(pe.Where, "rev3_f") {
				t.Errorf("%v: the target's own 42501 error lost its CONTEXT (%q)", mode, pe.Where)
			}
		}
	})
}
