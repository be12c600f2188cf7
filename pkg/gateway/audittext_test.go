package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
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
