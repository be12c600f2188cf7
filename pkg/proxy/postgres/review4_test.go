package postgres

// Found by a review of forwarding what the target will skip; each failed
// before its fix.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestBigExecModeBatchWithEarlyError: the pgx batch of
// TestBigBatchWithEarlyError in QueryExecModeExec (unnamed Parse, Bind,
// Describe, Execute per query). Parses are still queued while skipping,
// and used to reach maxSkipped.
func TestBigExecModeBatchWithEarlyError(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		cfg := g.pgxConfig(t, goodToken, g.sslmode, nil)
		cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		b := &pgx.Batch{}
		b.Queue("SELECT 1/0")
		for i := range 70000 {
			b.Queue("SELECT $1::int", i)
		}
		br := conn.SendBatch(ctx, b)
		_, err = br.Exec()
		br.Close()
		if code := pgCode(err); code != "22012" {
			t.Errorf("first query of a 70000-query batch: %v (code %q), want 22012", err, code)
		}
		if err := conn.Ping(ctx); err != nil {
			t.Errorf("the session did not survive a failed batch: %v", err)
		}
	})
}

func TestSkippedStepScenarios(t *testing.T) {
	cases := []struct {
		name  string
		steps []step
		want  []pev
	}{
		{"flush-then-more", []step{
			{msgs{&P{Query: "SELECT 1/0"}, &B{}, &E{}, &F{}}, "error", 1},
			{msgs{&B{}, &D{ObjectType: 'P'}, &E{}, &S{}}, "ready", 1},
		}, []pev{
			{KindExecute, "SELECT 1/0", "22012", false, true},
			{KindExecute, "SELECT 1/0", "", false, true},
		}},
		{"refused-parse-flush-then-more", []step{
			{msgs{&P{Name: "r", Query: "DROP TABLE scratch"}, &F{}}, "error", 1},
			{msgs{&B{PreparedStatement: "r"}, &E{}, &P{Query: "SELECT 'after'"}, &B{}, &E{}, &S{}}, "ready", 1},
		}, []pev{
			{KindParse, "DROP TABLE scratch", codeInsufficientPriv, false, false},
			{KindExecute, "SELECT 'after'", "", false, true},
		}},
		{"copy-error-no-sync-then-more", []step{
			{msgs{&P{Query: "COPY scratch FROM STDIN"}, &B{}, &E{}, &F{}}, "copyin", 1},
			{msgs{&pgproto3.CopyData{Data: []byte("notanint\tx\n")}, &F{}}, "error", 1},
			{msgs{&B{}, &E{}, &S{}}, "ready", 1},
		}, []pev{
			{KindExecute, "COPY scratch FROM STDIN", "22P02", true, true},
			{KindExecute, "COPY scratch FROM STDIN", "", false, true},
		}},
		{"query-error-mid-step", []step{
			{msgs{&P{Query: "SELECT 'a'"}, &B{}, &E{}, &Q{String: "SELECT 1/0"}, &B{}, &E{}, &S{}}, "ready", 2},
		}, []pev{
			{KindExecute, "SELECT 'a'", "", true, true},
			{KindQuery, "SELECT 1/0", "22012", true, true},
			{KindExecute, "SELECT 'a'", "26000", false, true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forTransports(t, func(t *testing.T, plain bool) {
				g := startGateway(t, gatewayOptions{plainClients: plain})
				runPipeline(t, g, plain, tc.steps, tc.want)
			})
		})
	}
}

var _ = fmt.Sprint

// TestSecondSkippedExecuteOfFailedBind: a Bind fails (1/0 is planned at
// Bind); its portal's queued Execute is audited with the error. A second
// Execute of the portal, sent after the client read the error, is
// audited with the same error although the statement failed once.
func TestSecondSkippedExecuteOfFailedBind(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		runPipeline(t, g, plain, []step{
			{msgs{&P{Query: "SELECT 1/0"}, &B{}, &E{}, &F{}}, "error", 1},
			{msgs{&E{}, &S{}}, "ready", 1},
		}, []pev{
			{KindExecute, "SELECT 1/0", "22012", false, true},
			{KindExecute, "SELECT 1/0", "", false, true},
		})
	})
}

// TestClosesWhileSkipping: in a failed pipeline step, each Close of a
// portal the target skipped used to leave a revert that a later Bind
// overtook and that never applied; past maxPendingReverts (64) the
// session ended. A skipped Close now changes nothing, as on the target.
func TestClosesWhileSkipping(t *testing.T) {
	forTransports(t, func(t *testing.T, plain bool) {
		g := startGateway(t, gatewayOptions{plainClients: plain})
		p := &pipelineReader{rc: dialRaw(t, g, plain, encode(t, &P{Name: "s", Query: "SELECT 1"}, &S{}))}
		p.readUntil(t, "ready", 1)
		msgs := []pgproto3.FrontendMessage{&P{Query: "SELECT 1/0"}, &B{}, &E{}, &pgproto3.Flush{}}
		p.rc.conn.Write(encode(t, msgs...))
		if got := firstRowOrError(t, p); got != "ERROR 22012" {
			t.Fatalf("got %q, want the division by zero", got)
		}
		var more []pgproto3.FrontendMessage
		for range 100 {
			more = append(more, &pgproto3.Close{ObjectType: 'P', Name: "p"}, &B{DestinationPortal: "p", PreparedStatement: "s"}, &E{Portal: "p"})
		}
		p.rc.conn.Write(encode(t, append(more, &S{}, &Q{String: "SELECT 'alive'"})...))
		if got := firstRowOrError(t, p); got != "row alive" {
			t.Errorf("after 100 skipped Close, Bind and Execute: %q, want the next query's row", got)
		}
		p.readUntil(t, "ready", 1)
		// The reverts of the Closes are applied at the next message.
		p.rc.conn.Write(encode(t, &Q{String: "SELECT 'still alive'"}))
		if got := firstRowOrError(t, p); got != "row still alive" {
			t.Errorf("the next request: %q, want its row", got)
		}
	})
}
