package sqlclass

import "testing"

// FuzzClassify checks that Classify never panics and that whatever it does
// not refuse is fully classified: every statement has a tag and a valid
// level, and the result's level is the highest of them.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		pgbenchSelect,
		"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
		"EXPLAIN ANALYZE DELETE FROM t; PREPARE p AS UPDATE t SET a = 1",
		"DO $$BEGIN EXECUTE 'DROP TABLE t'; END$$",
		"COPY (SELECT 1) TO STDOUT; COPY t FROM PROGRAM 'x'",
		"/* x */ DrOp TaBlE \"DROP\"; SET ROLE postgres; SELECT E'\\';'",
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
		}
		if got := res.Level; got != want {
			t.Errorf("result level: got %v, want %v (the highest statement level)", got, want)
		}
	})
}
