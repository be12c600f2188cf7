package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// marshalLine is the reference for a JSON line: json.Marshal of e with its
// Time in UTC, and a newline.
func marshalLine(t *testing.T, e Event) []byte {
	t.Helper()
	e.Time = e.Time.UTC()
	want, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	return append(want, '\n')
}

// checkLines checks both encoders against json.Marshal: AppendJSONLine on
// e as given, and the sealer's appendLine on e once sealed.
func checkLines(t *testing.T, e Event) {
	t.Helper()
	if y := e.Time.UTC().Year(); y >= 0 && y <= 9999 {
		got, err := AppendJSONLine([]byte("x"), &e)
		if err != nil {
			t.Fatalf("AppendJSONLine: %v", err)
		}
		if want := append([]byte("x"), marshalLine(t, e)...); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSONLine:\n got %s\nwant %s", got, want)
		}
	}
	var h hasher
	sealed := e
	h.seal(&sealed, e.Seq, e.Prev)
	got := h.appendLine(nil, &sealed, sealed.Time)
	if want := marshalLine(t, sealed); !bytes.Equal(got, want) {
		t.Fatalf("sealed line:\n got %s\nwant %s", got, want)
	}
	if sealed.Hash != sealed.ComputeHash() {
		t.Fatalf("sealed hash %s, want ComputeHash %s", sealed.Hash, sealed.ComputeHash())
	}
}

func TestJSONLineMatchesEncodingJSON(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	full := Event{Seq: 42, Time: t0.Add(123456789), Principal: "user:zoë", Action: "statement",
		Target: "orders", Decision: "deny", Reason: "denied by rule", Rule: "no-drop",
		PolicyCommit: "3f2a9c1", Session: "s-1", Detail: map[string]string{"sql": "DROP TABLE x", "rows": "0"},
		Prev: Genesis, Hash: strings.Repeat("ab", 32)}
	with := func(edit func(*Event)) Event {
		e := full
		e.Detail = map[string]string{"sql": "DROP TABLE x", "rows": "0"}
		edit(&e)
		return e
	}
	many := make(map[string]string)
	for i := range 40 {
		many[strings.Repeat("k", 40-i)] = strings.Repeat("<v>", i)
	}
	tests := []struct {
		name string
		e    Event
	}{
		{"full", full},
		{"zero", Event{Time: time.Unix(0, 0).UTC()}},
		{"zero-time", Event{}},
		{"nil-detail", with(func(e *Event) { e.Detail = nil })},
		{"empty-detail", with(func(e *Event) { e.Detail = map[string]string{} })},
		{"empty-detail-key", with(func(e *Event) { e.Detail = map[string]string{"": ""} })},
		{"nanoseconds", with(func(e *Event) { e.Time = t0.Add(1) })},
		{"trailing-zeros", with(func(e *Event) { e.Time = t0.Add(120 * time.Millisecond) })},
		{"before-1970", with(func(e *Event) { e.Time = time.Date(1901, 12, 13, 20, 45, 52, 999, time.UTC) })},
		{"leap-day", with(func(e *Event) { e.Time = time.Date(2024, 2, 29, 23, 59, 59, 100, time.UTC) })},
		{"year-0", with(func(e *Event) { e.Time = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"year-9999", with(func(e *Event) { e.Time = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC) })},
		{"non-utc-zone", with(func(e *Event) { e.Time = t0.In(time.FixedZone("CET", 3600)) })},
		{"monotonic", with(func(e *Event) { e.Time = time.Now() })},
		{"negative-seq", with(func(e *Event) { e.Seq = -7 })},
		{"control-chars", with(func(e *Event) { e.Reason = "\x00\x01\b\f\n\r\t\x1f\x7f end" })},
		{"quotes-and-html", with(func(e *Event) { e.Principal = `a "b" \c <d> & e/f` })},
		{"unicode", with(func(e *Event) { e.Target = "ünïcødé ✓ 日本 😀 \u2028\u2029 \ufeff" })},
		{"invalid-utf8", with(func(e *Event) {
			e.Reason, e.Detail = "bad \xff\xfe utf-8 \xe2\x80", map[string]string{"k\xff": "v\xc3"}
		})},
		{"detail-keys-sorted", with(func(e *Event) {
			e.Detail = map[string]string{"b": "1", "a": "2", "B": "3", "é": "4", "a\"": "5", "\n": "6", "aa": "7"}
		})},
		{"detail-many", with(func(e *Event) { e.Detail = many })},
		{"long-statement", with(func(e *Event) { e.Detail = map[string]string{"sql": strings.Repeat("SELECT 'x' < 1;\n", 1000)} })},
		{"statement-event", with(func(e *Event) {
			e.Detail = map[string]string{"text": "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", "kind": "execute",
				"class": "SELECT", "rows": "1", "duration_us": "93", "tag": "SELECT"}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkLines(t, tt.e) })
	}
}

func TestAppendRFC3339Nano(t *testing.T) {
	for _, ns := range []int64{0, 1, -1, 999999999, 1e9, -1e9, 951782400e9, 4107542399999999999, -6795364578871345152, 1<<63 - 1, -1 << 63} {
		tm := time.Unix(0, ns).UTC()
		if got, want := string(appendRFC3339Nano(nil, tm)), tm.Format(time.RFC3339Nano); got != want {
			t.Errorf("appendRFC3339Nano(%d) = %s, want %s", ns, got, want)
		}
	}
	for _, tm := range []time.Time{
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1600, 2, 29, 12, 0, 0, 5e8, time.UTC),
		time.Date(1900, 3, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got, want := string(appendRFC3339Nano(nil, tm)), tm.Format(time.RFC3339Nano); got != want {
			t.Errorf("appendRFC3339Nano(%v) = %s, want %s", tm, got, want)
		}
	}
}

// FuzzJSONLine holds both line encoders to json.Marshal for arbitrary
// events. Its corpus in testdata/fuzz/FuzzJSONLine is part of the test.
func FuzzJSONLine(f *testing.F) {
	f.Add(int64(1), int64(1772355600000000000), "user:alice", "statement", "orders", "allow", "", "", "3f2a9c1", "s-1", "text", "SELECT 1", audit64("0"))
	f.Add(int64(0), int64(0), "", "", "", "", "", "", "", "", "", "", "")
	f.Add(int64(-1), int64(-1), "\x00\b\f<>&\u2028", "ünï", "\"\\", "\t", "\r\n", "😀", "\x7f", "\ufffd", "", "\u2029", "x")
	f.Add(int64(1<<62), int64(-1<<63), "abcdefg&", "abcdefgh<", "\xffbcdefgh", "abcdefghijklmno\x1f", "abcdefghijklmnop\"", "é", "a\\", "bad \xe2\x80", "k\xff", "v\xc3", Genesis)
	f.Fuzz(func(t *testing.T, seq, ns int64, principal, action, target, decision, reason, rule, commit, session, key, value, prev string) {
		e := Event{Seq: seq, Time: time.Unix(0, ns), Principal: principal, Action: action, Target: target,
			Decision: decision, Reason: reason, Rule: rule, PolicyCommit: commit, Session: session, Prev: prev, Hash: value + key}
		if key != "" || value != "" {
			e.Detail = map[string]string{key: value, key + "2": prev, "z" + value: key}
		}
		checkLines(t, e)
		if e.Detail != nil {
			checkDetailsLikeDetail(t, e, fieldList{{key, value}, {key + "2", prev}, {"z" + value, key}})
		}
	})
}

// fieldList is Details over fixed entries, appended in the order given.
type fieldList []Field

func (l fieldList) AppendDetail(dst []Field) []Field { return append(dst, l...) }

// checkDetailsLikeDetail checks that e with its Detail given as Details
// instead is the same event: the same hash and the same JSON lines, alone
// and after e sealed by the same hasher.
func checkDetailsLikeDetail(t *testing.T, e Event, d Details) {
	t.Helper()
	viaDetails := e
	viaDetails.Detail, viaDetails.Details = nil, d
	if got, want := viaDetails.ComputeHash(), e.ComputeHash(); got != want {
		t.Fatalf("hash with Details %s, with Detail %s", got, want)
	}
	if y := e.Time.UTC().Year(); y >= 0 && y <= 9999 {
		got, err := AppendJSONLine(nil, &viaDetails)
		if err != nil {
			t.Fatalf("AppendJSONLine: %v", err)
		}
		if want := marshalLine(t, e); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSONLine with Details:\n got %s\nwant %s", got, want)
		}
	}
	var h hasher
	for round := range 2 { // the second time, after a sealed event with Detail
		a, b := e, viaDetails
		h.seal(&a, e.Seq, e.Prev)
		lineA := h.appendLine(nil, &a, a.Time)
		h.seal(&b, e.Seq, e.Prev)
		lineB := h.appendLine(nil, &b, b.Time)
		if a.Hash != b.Hash || !bytes.Equal(lineA, lineB) {
			t.Fatalf("round %d: sealed with Detail %s %s, with Details %s %s", round, a.Hash, lineA, b.Hash, lineB)
		}
	}
}

func TestDetailsIsTheSameEventAsDetail(t *testing.T) {
	base := Event{Seq: 7, Time: time.Date(2026, 3, 1, 9, 0, 0, 5, time.UTC), Principal: "service:etl", Action: "statement",
		Target: "orders", Decision: "allow", Session: "s-1", Prev: Genesis}
	var many fieldList
	for i := range 30 {
		many = append(many, Field{strings.Repeat("k", 30-i), strings.Repeat("<v>", i)})
	}
	tests := []struct {
		name string
		d    fieldList
	}{
		{"none", nil},
		{"in-order", fieldList{{"class", "SELECT"}, {"duration_us", "93"}, {"kind", "execute"}, {"rows", "1"}, {"text", "SELECT 1"}}},
		{"out-of-order", fieldList{{"text", "SELECT 1"}, {"b", "1"}, {"a", "2"}, {"B", "3"}, {"é", "4"}, {"", "5"}}},
		{"equal-keys-last-wins", fieldList{{"a", "first"}, {"b", "1"}, {"a", "second"}, {"a", "third"}}},
		{"equal-keys-many", append(append(fieldList{}, many...), Field{"kk", "again"}, Field{"k", "again"})},
		{"invalid-utf8", fieldList{{"k\xff", "v\xc3"}, {"ok", "ünï"}}},
		{"invalid-utf8-value-only", fieldList{{"a", "\xff"}, {"b", "2"}}},
		{"many", many},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base
			if len(tt.d) > 0 {
				e.Detail = map[string]string{}
				for _, f := range tt.d {
					e.Detail[f.Key] = f.Value
				}
			}
			checkDetailsLikeDetail(t, e, tt.d)
		})
	}
}

func audit64(c string) string { return strings.Repeat(c, 64) }

// BenchmarkSealStatement measures the sealer's work per statement event:
// normalizing, hashing and encoding its JSON line.
func BenchmarkSealStatement(b *testing.B) {
	e := Event{Time: time.Now(), Principal: "service:etl", Action: "statement", Target: "orders", Decision: "allow",
		PolicyCommit: "3f2a9c1d3f2a9c1d3f2a9c1d3f2a9c1d3f2a9c1d", Session: "s-0011223344556677",
		Detail: map[string]string{"text": "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", "kind": "execute",
			"class": "SELECT", "rows": "1", "duration_us": "93", "tag": "SELECT"}}
	var h hasher
	var line []byte
	prev := Genesis
	b.ReportAllocs()
	for i := range b.N {
		sealed := e
		h.seal(&sealed, int64(i+1), prev)
		prev = sealed.Hash
		line = h.appendLine(line[:0], &sealed, sealed.Time)
	}
}

// TestHasherReuseAcrossDetails seals a sequence of events with one hasher,
// as the Log does: a Detail with the previous one's size but other keys,
// or its keys with other values, must hash and encode as if alone.
func TestHasherReuseAcrossDetails(t *testing.T) {
	details := []map[string]string{
		{"a": "1", "b": "2"},
		{"a": "3", "b": "4"},
		{"a": "1", "c": "2"},
		{"b": "1", "c": "<2>"},
		{"b": "1", "c": "<2>", "d": "x"},
		{"a": "1"},
		nil,
		{"a": "1", "b": "2"},
		{"b": "9", "a": "8"},
		{"a\xff": "1", "b": "2"},
		{"a": "1", "b": "2"},
	}
	var h hasher
	prev := Genesis
	for i, d := range details {
		e := Event{Time: time.Unix(0, int64(i)), Action: "statement", Detail: d}
		h.seal(&e, int64(i+1), prev)
		prev = e.Hash
		if got, want := e.Hash, e.ComputeHash(); got != want {
			t.Errorf("event %d (%q): hash %s, want %s", i, d, got, want)
		}
		if got, want := h.appendLine(nil, &e, e.Time), marshalLine(t, e); !bytes.Equal(got, want) {
			t.Errorf("event %d: line\n got %s\nwant %s", i, got, want)
		}
	}
}
