package sqlclass

import (
	"context"
	"flag"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/gatectl/gatectl/pkg/pgserver"
)

var update = flag.Bool("update", false, "rewrite pg_catalog_functions.txt and pg_catalog_operators.txt from the installed PostgreSQL 15")

var (
	pgOnce sync.Once
	pgSrv  *pgserver.Server
	pgErr  error
)

// needPostgres returns a throwaway PostgreSQL shared by this package's tests,
// skipping the test when PostgreSQL is not installed: the classifier itself
// needs no server, these tests only confirm its inputs and attacks.
func needPostgres(t *testing.T) *pgserver.Server {
	t.Helper()
	if _, ok := pgserver.Installed(); !ok {
		t.Fatal("PostgreSQL is not installed (make deps)")
	}
	pgOnce.Do(func() { pgSrv, pgErr = pgserver.Start(context.Background(), pgserver.Options{}) })
	if pgErr != nil {
		t.Fatalf("start PostgreSQL: %v", pgErr)
	}
	return pgSrv
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if pgSrv != nil {
		pgSrv.Stop()
	}
	os.Exit(code)
}

// TestBuiltinListsMatchPostgreSQL regenerates the embedded built-in name
// lists from a fresh PostgreSQL 15 cluster and compares them (or, with
// -update, rewrites them).
func TestBuiltinListsMatchPostgreSQL(t *testing.T) {
	pg := needPostgres(t)
	if pg.Version != "15" {
		t.Skipf("the lists are from PostgreSQL 15; the installed server is %s", pg.Version)
	}
	for _, c := range []struct {
		file, query, embedded string
	}{
		{"pg_catalog_functions.txt", "SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace ORDER BY 1", builtinFunctionsText},
		{"pg_catalog_operators.txt", "SELECT DISTINCT oprname FROM pg_operator WHERE oprnamespace = 'pg_catalog'::regnamespace ORDER BY 1", builtinOperatorsText},
	} {
		out, err := pg.Psql(context.Background(), "postgres", c.query)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if *update {
			if err := os.WriteFile(c.file, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, want := c.embedded, out; got != want {
			t.Errorf("%s is out of date with PostgreSQL %s (%d lines embedded, %d from the server); run go test -run TestBuiltinListsMatchPostgreSQL -update", c.file, pg.Version, strings.Count(got, "\n"), strings.Count(want, "\n"))
		}
	}
}

// TestAttacksOnPostgreSQL runs each attack the classifier must catch on a
// real server, to prove it has the effect claimed (the output after it), and
// checks the classification that stops it. Each runs in a transaction that
// is rolled back.
func TestAttacksOnPostgreSQL(t *testing.T) {
	pg := needPostgres(t)
	const setup = `CREATE TABLE t (a int); INSERT INTO t VALUES (1);
CREATE SEQUENCE s; SELECT setval('s', 5);
CREATE FUNCTION purge_everything() RETURNS int LANGUAGE sql AS 'DELETE FROM t RETURNING 0';
CREATE FUNCTION purge(int, int) RETURNS int LANGUAGE sql AS 'DELETE FROM t RETURNING 0';
CREATE OPERATOR public.+ (LEFTARG = int, RIGHTARG = int, FUNCTION = purge);
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = purge);
`
	const rowsLeft = "SELECT count(*) FROM t;"
	tests := []struct {
		name, attack, check, want string
		level                     Level
		opaque                    bool
	}{
		{"scs-off-smuggles-delete", `SET standard_conforming_strings = off; SELECT 'a\', ' ; DELETE FROM t; -- ';`, rowsLeft, "a', \n0\n", LevelAdmin, false},
		{"set-config-scs-smuggles-delete", `SELECT set_config('standard_conforming_strings', 'off', true) = 'off'; SELECT 'a\', ' ; DELETE FROM t; -- ';`, rowsLeft, "t\na', \n0\n", LevelAdmin, false},
		{"nextval-attribute", "SELECT ('s'::regclass).nextval;", "SELECT last_value FROM s;", "6\n6\n", LevelWrite, false},
		{"read-file-attribute", "SELECT length(('postgresql.auto.conf'::text).pg_read_file) > 0;", "", "t\n", LevelAdmin, false},
		{"user-function", "SELECT purge_everything();", rowsLeft, "0\n0\n", LevelRead, true},
		{"user-schema-operator", "SELECT 1 OPERATOR(public.+) 2;", rowsLeft, "0\n0\n", LevelRead, true},
		{"user-operator", "SELECT 1 === 2;", rowsLeft, "0\n0\n", LevelRead, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// \o hides the setup's output.
			script := "BEGIN;\n\\o /dev/null\n" + setup + "\\o\n" + tt.attack + "\n" + tt.check + "\nROLLBACK;\n"
			out, err := pg.Psql(context.Background(), "postgres", script)
			if err != nil {
				t.Fatalf("run attack: %v", err)
			}
			if got, want := out, tt.want; got != want {
				t.Errorf("attack output: got %q, want %q (the attack no longer works as described)", got, want)
			}
			res, err := Classify(tt.attack)
			if err != nil {
				t.Fatal(err)
			}
			opaque := false
			for _, st := range res.Statements {
				opaque = opaque || st.Opaque
			}
			if got, want := res.Level, tt.level; got != want {
				t.Errorf("level: got %v, want %v (reasons %q)", got, want, reasons(res))
			}
			if got, want := opaque, tt.opaque; got != want {
				t.Errorf("opaque: got %v, want %v", got, want)
			}
		})
	}
}
