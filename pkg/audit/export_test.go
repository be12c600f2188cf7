package audit_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/audit"
)

func TestWriteJSONL(t *testing.T) {
	e := sampleEvent()
	e.Time = e.Time.In(time.FixedZone("CET", 3600))
	e.Detail["statement"] = "SELECT 1 WHERE a < b & c > d"
	e.Hash = e.ComputeHash()
	var buf bytes.Buffer
	if err := audit.WriteJSONL(&buf, e); err != nil {
		t.Fatalf("WriteJSONL: %v", err)
	}
	want := `{"seq":7,"time":"2026-03-01T12:30:00.123456789Z","principal":"user:alice","action":"statement",` +
		`"target":"orders","decision":"deny","reason":"destructive DDL is not allowed through the gateway",` +
		`"rule":"no-drop","policy_commit":"3f2a9c1","session":"s-1",` +
		`"detail":{"client":"127.0.0.1:5000","statement":"SELECT 1 WHERE a < b & c > d"},` +
		`"prev":"0000000000000000000000000000000000000000000000000000000000000000","hash":"` + e.Hash + `"}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("WriteJSONL wrote\n%s\nwant\n%s", got, want)
	}
}
