package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	pgproxy "github.com/gatectl/gatectl/pkg/proxy/postgres"
)

// TestAppendTextKeepsBothEnds: padding in front of a long statement must
// not push what ran out of the audit event.
func TestAppendTextKeepsBothEnds(t *testing.T) {
	text := "/* " + strings.Repeat("é", maxAuditText) + " */ DELETE FROM orders"
	f := appendText(nil, text)
	if len(f) != 3 || f[0].Key != "text" || f[1].Key != "text_bytes" || f[2].Key != "text_sha256" {
		t.Fatalf("fields %v, want text, text_bytes, text_sha256", f)
	}
	kept := f[0].Value
	if !strings.HasPrefix(kept, "/* éé") || !strings.HasSuffix(kept, "*/ DELETE FROM orders") || !utf8.ValidString(kept) {
		t.Errorf("text keeps %q…%q, want both ends, valid UTF-8", kept[:10], kept[len(kept)-30:])
	}
	if len(kept) > maxAuditText+64 {
		t.Errorf("text keeps %d bytes, want about %d", len(kept), maxAuditText)
	}
	sum := sha256.Sum256([]byte(text))
	if f[2].Value != hex.EncodeToString(sum[:]) || f[1].Value != strconv.Itoa(len(text)) {
		t.Errorf("text_bytes %s, text_sha256 %s: want the whole text's", f[1].Value, f[2].Value)
	}
	if short := appendText(nil, "SELECT 1"); len(short) != 1 || short[0].Value != "SELECT 1" {
		t.Errorf("a short text: %v, want it whole and alone", short)
	}
	if got := truncate("aé", 2); got != "a…" {
		t.Errorf("truncate cut a character: %q", got)
	}
}

// TestStatementDetailOfAnInterruptedStatement: the statement in flight
// when its session ended is audited as interrupted, not as one that did
// not run (a resilience test's finding: a killed client's COPY that had
// sent 60 MB read "executed": "false"); a skipped one still says so. The
// keys stay in ascending order, which the audit log relies on.
func TestStatementDetailOfAnInterruptedStatement(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    pgproxy.StatementEvent
		want string
	}{
		{"interrupted", pgproxy.StatementEvent{Allowed: true, Interrupted: true, Rows: 7}, "interrupted=true rows=7"},
		{"skipped", pgproxy.StatementEvent{Allowed: true}, "executed=false"},
		{"completed", pgproxy.StatementEvent{Allowed: true, Executed: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newStatementDetail(tc.e)
			fields := d.AppendDetail(nil)
			var keys, got []string
			for _, f := range fields {
				keys = append(keys, f.Key)
				switch f.Key {
				case "executed", "interrupted":
					got = append(got, f.Key+"="+f.Value)
				case "rows":
					if tc.e.Rows != 0 {
						got = append(got, f.Key+"="+f.Value)
					}
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("got %q, want %q", strings.Join(got, " "), tc.want)
			}
			if !slices.IsSorted(keys) {
				t.Errorf("keys %v are not in ascending order", keys)
			}
		})
	}
}
