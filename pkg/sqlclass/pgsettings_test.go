package sqlclass

import "testing"

// TestPgSettingsWritesAreForbidden: commit ab170fd makes every SET,
// ALTER … SET and set_config of standard_conforming_strings or
// client_encoding to an unsafe value Forbidden for every grant, so that
// no statement pipelined behind it is read differently by the target.
// pg_settings is updatable by every role (its rule calls set_config), so
// an UPDATE of it is the same change, and only needs write.
func TestPgSettingsWritesAreForbidden(t *testing.T) {
	for _, sql := range []string{
		"UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'",
		"UPDATE pg_catalog.pg_settings SET setting = 'SJIS' WHERE name = 'client_encoding'",
		"WITH x AS (UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings' RETURNING 1) SELECT 1 FROM x",
	} {
		res, err := Classify(sql)
		if err != nil {
			t.Fatal(err)
		}
		forbidden := false
		for _, st := range res.Statements {
			forbidden = forbidden || st.Forbidden != ""
			t.Logf("%s: tag=%s level=%v opaque=%v forbidden=%q", sql, st.Tag, st.Level, st.Opaque, st.Forbidden)
		}
		if !forbidden {
			t.Errorf("%q changes a lexer setting (pg_settings' update rule calls set_config) but is not Forbidden", sql)
		}
	}
}
