package sqlrequest

import (
	"testing"

	"github.com/gatectl/gatectl/pkg/policy"
)

func TestFromSQL(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want []policy.Statement // Tag and Access only
	}{
		{"select", "SELECT 1", []policy.Statement{{Tag: "SELECT", Access: policy.AccessRead}}},
		{"second-statement-writes", "SELECT 1; DELETE FROM t", []policy.Statement{{Tag: "SELECT", Access: policy.AccessRead}, {Tag: "DELETE", Access: policy.AccessWrite}}},
		{"cte-write", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", []policy.Statement{{Tag: "SELECT", Access: policy.AccessWrite}}},
		{"ddl", "drop table t", []policy.Statement{{Tag: "DROP TABLE", Access: policy.AccessAdmin}}},
		{"do-block", "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", []policy.Statement{{Tag: "DO", Access: policy.AccessAdmin}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := FromSQL(tt.sql)
			if err != nil {
				t.Fatal(err)
			}
			if len(req.Statements) != len(tt.want) {
				t.Fatalf("statements: got %d, want %d", len(req.Statements), len(tt.want))
			}
			for i, w := range tt.want {
				got := req.Statements[i]
				if got.Tag != w.Tag || got.Access != w.Access {
					t.Errorf("statement %d: got %s/%s, want %s/%s", i, got.Tag, got.Access, w.Tag, w.Access)
				}
				if got.Why == "" {
					t.Errorf("statement %d: no Why", i)
				}
			}
		})
	}
}

func TestFromSQLRefusesWhatItCannotParse(t *testing.T) {
	if _, err := FromSQL("SELEC 1 FROM"); err == nil {
		t.Fatal("got no error for unparseable SQL, want one (fail closed)")
	}
}
