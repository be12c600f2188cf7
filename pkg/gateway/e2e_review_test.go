package gateway_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStandardConformingStringsStaysOn is the attack: with
// standard_conforming_strings off, the target reads
// 'a\', ' ; DELETE FROM orders; -- ' as a string followed by a DELETE, while
// the parser sees one SELECT. Even an admin may not SET it: a statement
// pipelined behind the SET would run before the target reports the change.
// (pkg/proxy/postgres tests the backstop: a session ends when the target
// reports such a change made where the parser cannot see it.)
func TestStandardConformingStringsStaysOn(t *testing.T) {
	before := snapshot(t)
	conn := connect(t, pgConfig(t, carol))
	ctx := testCtx(t)
	_, err := conn.Exec(ctx, "SET standard_conforming_strings = off", pgx.QueryExecModeSimpleProtocol)
	if err == nil {
		_, err = conn.Exec(ctx, `SELECT 'a\', ' ; DELETE FROM orders WHERE id = -1; -- '`, pgx.QueryExecModeSimpleProtocol)
	}
	wantRefusal(t, err, "refused for every grant")
	if got := snapshot(t); got != before {
		t.Errorf("the target changed:\ngot  %s\nwant %s", got, before)
	}
}

// TestUserFunctionIsCoveredByRules checks that a function the parser cannot
// see into (here one that deletes) is covered by the deny rules on the
// target, for a write grant and an admin grant, and that attribute notation
// does not hide a built-in with side effects.
func TestUserFunctionIsCoveredByRules(t *testing.T) {
	psqlUpstream(t, `SET ROLE orders_admin;
CREATE OR REPLACE FUNCTION e2e_purge() RETURNS bigint LANGUAGE sql AS 'WITH d AS (DELETE FROM orders WHERE id = -1 RETURNING 1) SELECT count(*) FROM d';
GRANT EXECUTE ON FUNCTION e2e_purge() TO PUBLIC;`)
	tests := []struct {
		name string
		as   who
		sql  string
		want string
	}{
		{"user-function-write-grant", alice, "SELECT e2e_purge()", `cannot inspect`},
		{"user-function-admin-grant", carol, "SELECT e2e_purge()", `cannot inspect`},
		{"nextval-attribute-notation", etl, "SELECT ('orders_id_seq'::regclass).nextval", `"etl-orders-read"`},
		{"read-file-attribute-notation", alice, "SELECT ('postgresql.auto.conf'::text).pg_read_file", `"dba-orders-write"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t)
			conn := connect(t, pgConfig(t, tt.as))
			_, err := conn.Exec(testCtx(t), tt.sql)
			wantRefusal(t, err, tt.want)
			noteRefusal(tt.as, tt.sql, "")
			if got := snapshot(t); got != before {
				t.Errorf("the target changed:\ngot  %s\nwant %s", got, before)
			}
			if strings.Contains(tt.want, "inspect") {
				if _, err := conn.Exec(testCtx(t), "SELECT 1"); err != nil {
					t.Errorf("session after the refusal: %v", err)
				}
			}
		})
	}
}
