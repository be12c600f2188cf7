package sqlclass

import "testing"

// FuzzClassify checks that Classify never panics and that whatever it does
// not refuse is fully classified: every statement has a tag and a valid
// level, the result's level is the highest of them, and each statement's
// own text classifies alone as it did in the string (so the Text a caller
// logs or re-checks is the statement that was judged).
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		pgbenchSelect,
		"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
		"EXPLAIN ANALYZE DELETE FROM t; PREPARE p AS UPDATE t SET a = 1",
		"DO $$BEGIN EXECUTE 'DROP TABLE t'; END$$",
		"COPY (SELECT 1) TO STDOUT; COPY t FROM PROGRAM 'x'",
		"/* x */ DrOp TaBlE \"DROP\"; SET ROLE postgres; SELECT E'\\';'",
		"SET standard_conforming_strings = off; SELECT 'a\\', ' ; DELETE FROM t; -- '",
		"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE; RESET ALL",
		"SELECT set_config('application_name', 'x', false), pg_catalog.set_config('role', 'x', true), set_config()",
		"SELECT ('s'::regclass).nextval, x.pg_read_file, ((x).a).lo_import FROM t x",
		"SELECT purge_everything(), public.lower(a) FROM t WHERE 1 OPERATOR(public.+) 2 ORDER BY a USING ===",
		"SELECT table_to_xml('t', true, false, ''), txid_current()",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		res, err := Classify(sql)
		if err != nil {
			return
		}
		want := LevelRead
		for i, st := range res.Statements {
			if st.Tag == "" {
				t.Errorf("statement %d (%q): empty tag", i, st.Text)
			}
			if !st.Level.Valid() {
				t.Errorf("statement %d (%q): invalid level %v", i, st.Text, st.Level)
			}
			if st.Reason == "" {
				t.Errorf("statement %d (%q): empty reason", i, st.Text)
			}
			// Rules match Tags: the statement's own tag must be among them.
			if len(st.Tags) == 0 || st.Tags[0] != st.Tag {
				t.Errorf("statement %d (%q): Tags %q do not start with its tag %q", i, st.Text, st.Tags, st.Tag)
			}
			want = max(want, st.Level)
			alone, err := Classify(st.Text)
			if err != nil || len(alone.Statements) != 1 {
				t.Errorf("statement %d (%q) alone: got %v, want one statement", i, st.Text, err)
				continue
			}
			if got := alone.Statements[0]; got.Level != st.Level || got.Opaque != st.Opaque {
				t.Errorf("statement %d (%q) alone: got %v opaque=%v, want %v opaque=%v", i, st.Text, got.Level, got.Opaque, st.Level, st.Opaque)
			}
		}
		if got := res.Level; got != want {
			t.Errorf("result level: got %v, want %v (the highest statement level)", got, want)
		}
	})
}
