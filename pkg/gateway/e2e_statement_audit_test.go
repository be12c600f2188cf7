package gateway_test

import (
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStatementEventDetail checks what a statement event says (DESIGN.md
// §6, issue P2 item 5): its text, protocol kind, class, rows, duration and
// command tag, and the SQLSTATE when the target refused it, for the
// extended and the simple protocol.
func TestStatementEventDetail(t *testing.T) {
	conn := connect(t, pgConfig(t, etl))
	ctx := testCtx(t)
	mark := strconv.FormatInt(time.Now().UnixNano(), 36)

	selectSQL := "SELECT id FROM orders LIMIT 3 -- detail " + mark
	rows, err := conn.Query(ctx, selectSQL)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	var n int64
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read rows: %v", err)
	}
	simpleSQL := "SELECT 1 -- simple " + mark
	if _, err := conn.Exec(ctx, simpleSQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("simple query: %v", err)
	}
	failSQL := "SELECT 1/0 -- fails " + mark
	if rows, err := conn.Query(ctx, failSQL); err == nil {
		rows.Close()
		if rows.Err() == nil {
			t.Fatal("SELECT 1/0 succeeded")
		}
	}

	byText := map[string]map[string]string{}
	for _, e := range auditEvents(t, url.Values{"action": {"statement"}, "principal": {etl.principal}}) {
		byText[e.Detail["text"]] = e.Detail
	}
	for _, tt := range []struct {
		sql  string
		want map[string]string
	}{
		{selectSQL, map[string]string{"kind": "execute", "class": "SELECT", "rows": fmt.Sprint(n), "tag": "SELECT"}},
		{simpleSQL, map[string]string{"kind": "query", "class": "SELECT", "rows": "1", "tag": "SELECT"}},
		{failSQL, map[string]string{"kind": "execute", "class": "SELECT", "rows": "0", "error_code": "22012"}},
	} {
		d, ok := byText[tt.sql]
		if !ok {
			t.Errorf("no statement event with text %q", tt.sql)
			continue
		}
		for k, v := range tt.want {
			if d[k] != v {
				t.Errorf("%q: detail %s = %q, want %q (detail %q)", tt.sql, k, d[k], v, d)
			}
		}
		if us, err := strconv.ParseInt(d["duration_us"], 10, 64); err != nil || us < 0 {
			t.Errorf("%q: detail duration_us = %q, want a count of microseconds", tt.sql, d["duration_us"])
		}
		if _, ok := d["error_code"]; ok && tt.want["error_code"] == "" {
			t.Errorf("%q: detail has error_code %q, want none", tt.sql, d["error_code"])
		}
	}
	if n != 3 {
		t.Errorf("read %d rows, want 3 (the demo schema has more orders)", n)
	}
}
