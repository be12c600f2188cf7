package sqlite

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gatectl/gatectl/pkg/audit"
)

// checkEventLine encodes e and checks that the line is what json.Marshal
// makes of e (in UTC) and that it decodes back to e exactly.
func checkEventLine(t *testing.T, e audit.Event) {
	t.Helper()
	line, err := audit.AppendJSONLine(nil, &e)
	if err != nil {
		t.Fatalf("AppendJSONLine: %v", err)
	}
	utc := e
	utc.Time = e.Time.UTC()
	want, err := json.Marshal(utc)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	if got := line; !bytes.Equal(got, append(want, '\n')) {
		t.Fatalf("line:\n got %s\nwant %s", got, want)
	}
	got, err := decodeEventLine(bytes.TrimSuffix(line, []byte{'\n'}))
	if err != nil {
		t.Fatalf("decodeEventLine(%s): %v", line, err)
	}
	// The round trip is exact for what the audit log stores: valid UTF-8,
	// a UTC time without monotonic reading, an empty Detail as nil.
	wantEvent := e
	wantEvent.Time = time.Unix(0, e.Time.UnixNano()).UTC()
	if len(wantEvent.Detail) == 0 {
		wantEvent.Detail = nil
	}
	if !reflect.DeepEqual(got, wantEvent) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, wantEvent)
	}
	if seq, ok := lineSeq(line); !ok || seq != e.Seq {
		t.Errorf("lineSeq = %d, %t, want %d, true", seq, ok, e.Seq)
	}
}

func TestEventLineRoundTrip(t *testing.T) {
	full := audit.Event{Seq: 42, Time: t0.Add(123456789), Principal: "user:zoë", Action: "statement",
		Target: "orders", Decision: "deny", Reason: "denied by rule", Rule: "no-drop",
		PolicyCommit: "3f2a9c1", Session: "s-1", Detail: map[string]string{"sql": "DROP TABLE x", "rows": "0"},
		Prev: audit.Genesis, Hash: strings.Repeat("ab", 32)}
	with := func(edit func(*audit.Event)) audit.Event {
		e := full
		e.Detail = map[string]string{"sql": "DROP TABLE x", "rows": "0"}
		edit(&e)
		return e
	}
	tests := []struct {
		name string
		e    audit.Event
	}{
		{"full", full},
		{"zero", audit.Event{Time: time.Unix(0, 0).UTC()}},
		{"nil-detail", with(func(e *audit.Event) { e.Detail = nil })},
		{"empty-detail", with(func(e *audit.Event) { e.Detail = map[string]string{} })},
		{"empty-detail-value", with(func(e *audit.Event) { e.Detail = map[string]string{"": ""} })},
		{"nanoseconds", with(func(e *audit.Event) { e.Time = t0.Add(1) })},
		{"trailing-zeros", with(func(e *audit.Event) { e.Time = t0.Add(120 * time.Millisecond) })},
		{"before-1970", with(func(e *audit.Event) { e.Time = time.Date(1901, 12, 13, 20, 45, 52, 999, time.UTC) })},
		{"non-utc-zone", with(func(e *audit.Event) { e.Time = t0.In(time.FixedZone("CET", 3600)) })},
		{"monotonic", with(func(e *audit.Event) { e.Time = time.Now() })},
		{"negative-seq", with(func(e *audit.Event) { e.Seq = -7 })},
		{"control-chars", with(func(e *audit.Event) { e.Reason = "\x00\x01\b\f\n\r\t\x1f\x7f end" })},
		{"quotes-and-html", with(func(e *audit.Event) { e.Principal = `a "b" \c <d> & e/f` })},
		{"unicode", with(func(e *audit.Event) { e.Target = "ünïcødé ✓ 日本 😀 \u2028\u2029 \ufeff" })},
		{"detail-keys-sorted", with(func(e *audit.Event) {
			e.Detail = map[string]string{"b": "1", "a": "2", "B": "3", "é": "4", "a\"": "5", "\n": "6"}
		})},
		{"long-statement", with(func(e *audit.Event) { e.Detail = map[string]string{"sql": strings.Repeat("SELECT 'x';\n", 1000)} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkEventLine(t, tt.e) })
	}
}

// TestEventLineInvalidUTF8 checks that invalid UTF-8, which the audit log
// replaces before sealing, is still written as encoding/json writes it.
func TestEventLineInvalidUTF8(t *testing.T) {
	e := audit.Event{Seq: 1, Time: t0, Reason: "bad \xff\xfe utf-8 \xe2\x80", Detail: map[string]string{"k\xff": "v\xc3"}}
	line, err := audit.AppendJSONLine(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(e)
	if got := line; !bytes.Equal(got, append(want, '\n')) {
		t.Errorf("line:\n got %s\nwant %s", got, want)
	}
}

func TestEventLineRefusesAYearJSONCannotHold(t *testing.T) {
	e := audit.Event{Seq: 1, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := audit.AppendJSONLine(nil, &e); err == nil || !strings.Contains(err.Error(), "year outside of range") {
		t.Errorf("AppendJSONLine(year 10000) = %v, want a year range error", err)
	}
}

func TestLineSeq(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		want   int64
		wantOK bool
	}{
		{"written", `{"seq":17,"time":"x"`, 17, true},
		{"negative", `{"seq":-3,"time":"x"`, -3, true},
		{"garbage-after", `{"seq":17garbage`, 17, true},
		{"other-order", `{"time":"x","seq":17}`, 0, false},
		{"no-digits", `{"seq":"17"}`, 0, false},
		{"empty", ``, 0, false},
		{"overflow", `{"seq":99999999999999999999}`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := lineSeq([]byte(tt.line))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("lineSeq(%q) = %d, %t, want %d, %t", tt.line, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// FuzzEventLineRoundTrip encodes arbitrary events and checks the line
// against encoding/json and the decode against the event.
func FuzzEventLineRoundTrip(f *testing.F) {
	f.Add(int64(1), int64(1772355600000000000), "user:alice", "statement", "orders", "allow", "", "", "3f2a9c1", "s-1", "sql", "SELECT 1", audit.Genesis)
	f.Add(int64(0), int64(0), "", "", "", "", "", "", "", "", "", "", "")
	f.Add(int64(-1), int64(-1), "\x00\b\f<>&\u2028", "ünï", "\"\\", "\t", "\r\n", "😀", "\x7f", "\ufffd", "", "\u2029", "x")
	f.Fuzz(func(t *testing.T, seq, ns int64, principal, action, target, decision, reason, rule, commit, session, key, value, prev string) {
		e := audit.Event{Seq: seq, Time: time.Unix(0, ns).UTC(), Principal: principal, Action: action, Target: target,
			Decision: decision, Reason: reason, Rule: rule, PolicyCommit: commit, Session: session, Prev: prev, Hash: value + key}
		if key != "" || value != "" {
			e.Detail = map[string]string{key: value, key + "2": prev}
		}
		for _, s := range []string{principal, action, target, decision, reason, rule, commit, session, key, value, prev} {
			if !utf8.ValidString(s) {
				// The audit log replaces invalid UTF-8 before sealing, so
				// only the encoding, not the round trip, must hold.
				line, err := audit.AppendJSONLine(nil, &e)
				want, _ := json.Marshal(e)
				if err != nil || !bytes.Equal(line, append(want, '\n')) {
					t.Fatalf("line:\n got %s (%v)\nwant %s", line, err, want)
				}
				return
			}
		}
		checkEventLine(t, e)
	})
}
