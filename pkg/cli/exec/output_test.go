package exec

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
)

// result is one statement's answer as the writers see it.
type result struct {
	fields []pgconn.FieldDescription // nil: a statement without columns
	rows   [][][]byte
	tag    string
	cut    bool  // an error ends the result before its tag
	err    error // the error that ends the request, after the rows and in place of the tag
}

func field(name string, oid uint32) pgconn.FieldDescription {
	return pgconn.FieldDescription{Name: name, DataTypeOID: oid}
}

func vals(v ...any) [][]byte {
	out := make([][]byte, len(v))
	for i, x := range v {
		if x != nil {
			out[i] = []byte(x.(string))
		}
	}
	return out
}

// write feeds results to a writer of format as stream does.
func write(t *testing.T, format cmdutil.Format, results ...result) string {
	t.Helper()
	var buf bytes.Buffer
	w := newResultWriter(&buf, format)
	for _, r := range results {
		if r.fields != nil {
			if err := w.begin(r.fields); err != nil {
				t.Fatal(err)
			}
		}
		for _, row := range r.rows {
			if err := w.row(row); err != nil {
				t.Fatal(err)
			}
		}
		if r.err != nil {
			if err := w.fail(r.err); err != nil {
				t.Fatal(err)
			}
			break
		}
		if r.cut {
			break
		}
		if err := w.end(pgconn.NewCommandTag(r.tag), r.fields != nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

var (
	people = result{
		fields: []pgconn.FieldDescription{field("id", oidInt4), field("name", 25), field("note", 25)},
		rows: [][][]byte{
			vals("1", "Ann", "tab\there"),
			vals("2", "Bob", nil),
			vals("3", `back\slash`, "two\nlines\r"),
			vals("4", "", "Zoë, \"quoted\""),
		},
		tag: "SELECT 4",
	}
	empty    = result{fields: []pgconn.FieldDescription{field("id", oidInt4), field("name", 25)}, tag: "SELECT 0"}
	inserted = result{tag: "INSERT 0 1"}
)

// TestTSVIsCopyText: TSV escapes as PostgreSQL's COPY text format does, so
// tabs and newlines in values cannot shift columns or rows, and NULL is
// told from the empty string.
func TestTSVIsCopyText(t *testing.T) {
	got := write(t, cmdutil.FormatTSV, people)
	want := "id\tname\tnote\n" +
		"1\tAnn\ttab\\there\n" +
		"2\tBob\t\\N\n" +
		"3\tback\\\\slash\ttwo\\nlines\\r\n" +
		"4\t\tZoë, \"quoted\"\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestCSVRoundTrips(t *testing.T) {
	got := write(t, cmdutil.FormatCSV, people)
	recs, err := csv.NewReader(strings.NewReader(got)).ReadAll()
	if err != nil {
		t.Fatalf("output is not CSV: %v\n%s", err, got)
	}
	if len(recs) != 5 || strings.Join(recs[0], ",") != "id,name,note" {
		t.Fatalf("records %q", recs)
	}
	for i, row := range people.rows {
		for j, v := range row {
			if recs[i+1][j] != string(v) {
				t.Errorf("row %d column %d: %q, want %q", i, j, recs[i+1][j], v)
			}
		}
	}
}

// TestZeroRowsKeepTheHeader: a result without rows still says what its
// columns are.
func TestZeroRowsKeepTheHeader(t *testing.T) {
	for format, want := range map[cmdutil.Format]string{
		cmdutil.FormatTSV:   "id\tname\n",
		cmdutil.FormatCSV:   "id,name\n",
		cmdutil.FormatTable: "id  name\n",
	} {
		if got := write(t, format, empty); got != want {
			t.Errorf("%s: got %q, want %q", format, got, want)
		}
	}
	var out []map[string]any
	if err := json.Unmarshal([]byte(write(t, cmdutil.FormatJSON, empty)), &out); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != "[map[columns:[id name] command:SELECT 0 rows:[]]]" {
		t.Errorf("json: %v", out)
	}
}

func TestTableAligns(t *testing.T) {
	got := write(t, cmdutil.FormatTable, result{
		fields: []pgconn.FieldDescription{field("id", oidInt4), field("name", 25), field("n", oidInt4)},
		rows:   [][][]byte{vals("1", "Zoë", "7"), vals("1000", "Al", nil)},
		tag:    "SELECT 2",
	})
	want := "id    name  n\n" +
		"1     Zoë   7\n" +
		"1000  Al    \n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestTableStreamsPastItsSample: rows after the first tableSample are
// written as they come, in the widths of the sample.
func TestTableStreamsPastItsSample(t *testing.T) {
	var buf bytes.Buffer
	w := newResultWriter(&buf, cmdutil.FormatTable).(*tableWriter)
	w.begin([]pgconn.FieldDescription{field("id", oidInt4), field("v", 25)})
	for i := range tableSample + 5 {
		if err := w.row(vals(fmt.Sprint(i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	if len(w.sample) != 0 {
		t.Errorf("holds %d rows past its sample", len(w.sample))
	}
	w.end(pgconn.NewCommandTag("SELECT 1005"), true)
	w.close()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != tableSample+6 {
		t.Fatalf("%d lines", len(lines))
	}
	if lines[0] != "id   v" || lines[len(lines)-1] != "1004  x" {
		t.Errorf("first %q, last %q", lines[0], lines[len(lines)-1])
	}
}

func TestJSON(t *testing.T) {
	got := write(t, cmdutil.FormatJSON,
		result{
			fields: []pgconn.FieldDescription{
				field("id", oidInt4), field("id", oidInt8), field("id_2", 25), field("ok", oidBool),
				field("price", oidNumeric), field("ratio", oidFloat8), field("doc", oidJSONB), field("name", 25),
			},
			rows: [][][]byte{
				vals("1", "2", "x", "t", "12.50", "NaN", `{"a": [1, 2]}`, "Zoë \"Z\"\n"),
				vals("-3", "9007199254740993", nil, "f", "1e+30", "-Infinity", `"s"`, "bad \xff utf8"),
			},
			tag: "SELECT 2",
		},
		inserted,
		empty,
	)
	var out []struct {
		Columns []string
		Rows    []map[string]json.RawMessage
		Command string
	}
	if err := json.Unmarshal([]byte(got), &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, got)
	}
	if len(out) != 3 {
		t.Fatalf("%d results:\n%s", len(out), got)
	}
	if c := strings.Join(out[0].Columns, ","); c != "id,id_3,id_2,ok,price,ratio,doc,name" {
		t.Errorf("columns %s: each must be a distinct key", c)
	}
	r := out[0].Rows
	for key, want := range map[string]string{
		"id": `1`, "id_3": `2`, "id_2": `"x"`, "ok": `true`, "price": `12.50`, "ratio": `"NaN"`,
		"doc": `{"a": [1, 2]}`, "name": `"Zoë \"Z\"\n"`,
	} {
		if string(r[0][key]) != want {
			t.Errorf("row 1 %s: %s, want %s", key, r[0][key], want)
		}
	}
	for key, want := range map[string]string{
		"id": `-3`, "id_3": `9007199254740993`, "id_2": `null`, "ok": `false`, "price": `1e+30`,
		"ratio": `"-Infinity"`, "doc": `"s"`, "name": `"bad \ufffd utf8"`,
	} {
		if string(r[1][key]) != want {
			t.Errorf("row 2 %s: %s, want %s", key, r[1][key], want)
		}
	}
	if out[0].Command != "SELECT 2" || out[1].Command != "INSERT 0 1" || out[1].Columns != nil || out[2].Command != "SELECT 0" {
		t.Errorf("commands: %+v", out)
	}
}

// TestJSONStaysValidWhenCut: an error in the middle of a result still
// leaves valid JSON holding what arrived.
func TestJSONStaysValidWhenCut(t *testing.T) {
	for _, results := range [][]result{
		{},
		{{fields: people.fields, rows: people.rows[:2], cut: true}},
		{{fields: people.fields, cut: true}},
		{inserted, {fields: people.fields, rows: people.rows[:1], cut: true}},
	} {
		got := write(t, cmdutil.FormatJSON, results...)
		var out []map[string]any
		if err := json.Unmarshal([]byte(got), &out); err != nil {
			t.Errorf("not JSON: %v\n%s", err, got)
		}
		if len(out) != len(results) {
			t.Errorf("%d objects for %d results:\n%s", len(out), len(results), got)
		}
	}
}

func TestJSONRefusesARowOfTheWrongWidth(t *testing.T) {
	w := newResultWriter(&bytes.Buffer{}, cmdutil.FormatJSON)
	w.begin(people.fields)
	if err := w.row(vals("1")); err == nil {
		t.Error("a row of 1 value for 3 columns was written")
	}
}

func TestIsJSONNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-0": true, "12": true, "12.5": true, "1e5": true, "1E-5": true, "-1.5e+10": true,
		"": false, "-": false, "01": false, "1.": false, ".5": false, "1e": false, "NaN": false,
		"Infinity": false, "+1": false, "1 ": false, "0x10": false,
	} {
		if got := isJSONNumber([]byte(s)); got != want {
			t.Errorf("isJSONNumber(%q) = %v", s, got)
		}
	}
}

// TestJSONCarriesTheError: a request that fails says so in the JSON, in
// the object of the result it cut short (after the rows that arrived) or
// in one of its own, so that a script reading stdout cannot take partial
// rows for the whole result.
func TestJSONCarriesTheError(t *testing.T) {
	divByZero := &pgconn.PgError{Severity: "ERROR", Code: "22012", Message: "division by zero"}
	refused := &pgconn.PgError{Severity: "ERROR", Code: "42501", Message: "DELETE needs write", Hint: "ask for a grant", Detail: "rule x"}
	type object struct {
		Columns []string
		Rows    []map[string]any
		Command *string
		Error   map[string]string
	}
	for _, tc := range []struct {
		name    string
		results []result
		want    string // fmt of the last object's rows and error
	}{
		{
			name:    "cut-midway",
			results: []result{{fields: people.fields, rows: people.rows[:2], err: divByZero}},
			want:    "2 rows, error map[code:22012 message:division by zero]",
		},
		{
			name:    "cut-before-rows",
			results: []result{{fields: people.fields, err: divByZero}},
			want:    "0 rows, error map[code:22012 message:division by zero]",
		},
		{
			name:    "failed-before-columns",
			results: []result{inserted, {err: refused}},
			want:    "0 rows, error map[code:42501 detail:rule x hint:ask for a grant message:DELETE needs write]",
		},
		{
			name:    "connection-lost",
			results: []result{people, {fields: people.fields, rows: people.rows[:1], err: errors.New("unexpected EOF")}},
			want:    "1 rows, error map[message:unexpected EOF]",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := write(t, cmdutil.FormatJSON, tc.results...)
			var out []object
			if err := json.Unmarshal([]byte(got), &out); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, got)
			}
			if len(out) != len(tc.results) {
				t.Fatalf("%d objects for %d results:\n%s", len(out), len(tc.results), got)
			}
			for _, o := range out[:len(out)-1] {
				if o.Error != nil || o.Command == nil {
					t.Errorf("a result before the failure has error %v, command %v", o.Error, o.Command)
				}
			}
			last := out[len(out)-1]
			if s := fmt.Sprintf("%d rows, error %v", len(last.Rows), last.Error); s != tc.want {
				t.Errorf("got %s, want %s:\n%s", s, tc.want, got)
			}
			if last.Command != nil {
				t.Errorf("the failed result has a command tag %q", *last.Command)
			}
			if f := tc.results[len(tc.results)-1].fields; f != nil && len(last.Columns) != len(f) {
				t.Errorf("the failed result lost its columns: %v", last.Columns)
			}
		})
	}
}

// TestResultsAreSeparated: the results of a multi-statement request are
// told apart: a blank line between them in table and CSV, none after the
// last, and none for a result without columns (its tag goes to stderr).
func TestResultsAreSeparated(t *testing.T) {
	one := result{fields: []pgconn.FieldDescription{field("a", oidInt4)}, rows: [][][]byte{vals("1")}, tag: "SELECT 1"}
	two := result{fields: []pgconn.FieldDescription{field("b", 25), field("c", 25)}, rows: [][][]byte{vals("x", "y")}, tag: "SELECT 1"}
	for format, want := range map[cmdutil.Format]string{
		cmdutil.FormatTable: "a\n1\n\nb  c\nx  y\n\nid  name\n",
		cmdutil.FormatCSV:   "a\n1\n\nb,c\nx,y\n\nid,name\n",
	} {
		if got := write(t, format, one, inserted, two, empty); got != want {
			t.Errorf("%s: got %q, want %q", format, got, want)
		}
		if got := write(t, format, inserted, one); !strings.HasPrefix(got, "a\n") {
			t.Errorf("%s: the first result printed starts %q, want no blank line", format, got)
		}
	}
}

// TestCSVLoneEmptyFieldIsNotABlankLine: a one-column row of NULL or ”
// must not be a blank line, which CSV readers skip and which separates
// results.
func TestCSVLoneEmptyFieldIsNotABlankLine(t *testing.T) {
	got := write(t, cmdutil.FormatCSV,
		result{fields: []pgconn.FieldDescription{field("v", 25)}, rows: [][][]byte{vals(""), vals(nil), vals("x")}, tag: "SELECT 3"},
		result{fields: []pgconn.FieldDescription{field("w", 25)}, rows: [][][]byte{vals(nil)}, tag: "SELECT 1"},
	)
	if want := "v\n\"\"\n\"\"\nx\n\nw\n\"\"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	recs, err := csv.NewReader(strings.NewReader(got)).ReadAll()
	if err != nil || len(recs) != 6 {
		t.Errorf("read back %d records %q (%v), want the 4 rows and 2 headers", len(recs), recs, err)
	}
}

// TestTableEscapesControlCharacters: a value or name cannot break a
// table's lines or columns, fake a row, or send a terminal escape; and the
// escapes are unambiguous (a backslash is escaped too).
func TestTableEscapesControlCharacters(t *testing.T) {
	got := write(t, cmdutil.FormatTable, result{
		fields: []pgconn.FieldDescription{field("id", oidInt4), field("two\nlines", 25), field("z", 25)},
		rows: [][][]byte{
			vals("1", "a\n2  forged", "z"),
			vals("2", "cr\rtab\tesc\x1b[31mdel\x7f", "z"),
			vals("3", `back\n\slash`, "z"),
			vals("4", "c1\u0085ls\u2028rlo\u202eZoë\xff", "z"),
		},
		tag: "SELECT 4",
	})
	want := "id  two\\nlines                        z\n" +
		"1   a\\n2  forged                      z\n" +
		"2   cr\\rtab\\tesc\\x1b[31mdel\\x7f       z\n" +
		"3   back\\\\n\\\\slash                    z\n" +
		"4   c1\\u0085ls\\u2028rlo\\u202eZoë\\xff  z\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for s, want := range map[string]string{
		"":             "",
		"plain Zoë €":  "plain Zoë €",
		"\x00\x01\x1f": `\x00\x01\x1f`,
		"\uFFFD":       "\uFFFD",
		"\xe2\x82":     `\xe2\x82`,
		"\u200d\u00ad": "\u200d\u00ad",
	} {
		if got := tableText([]byte(s)); got != want {
			t.Errorf("tableText(%q) = %q, want %q", s, got, want)
		}
	}
}

// TestJSONAndCSVKeepControlCharacters: JSON and CSV have their own quoting,
// which must carry every control character through unchanged.
func TestJSONAndCSVKeepControlCharacters(t *testing.T) {
	var b []byte
	for c := range 0x20 {
		b = append(b, byte(c))
	}
	v := string(b) + "\x7f\u0085\u2028\u202e\",\\"
	r := result{fields: []pgconn.FieldDescription{field("v", 25), field("w", 25)}, rows: [][][]byte{vals(v, v)}, tag: "SELECT 1"}

	var out []struct{ Rows []map[string]string }
	if err := json.Unmarshal([]byte(write(t, cmdutil.FormatJSON, r)), &out); err != nil {
		t.Fatal(err)
	}
	if got := out[0].Rows[0]["v"]; got != v {
		t.Errorf("json: got %q, want %q", got, v)
	}
	recs, err := csv.NewReader(strings.NewReader(write(t, cmdutil.FormatCSV, r))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1][0] != v || recs[1][1] != v {
		t.Errorf("csv: got %q, want a header and a row of %q", recs, v)
	}
}

// TestTableIsOutBeforeTheRowCount: stream writes "(N rows)" to stderr
// after end; on a terminal the table must already be out by then.
func TestTableIsOutBeforeTheRowCount(t *testing.T) {
	var buf bytes.Buffer
	w := newResultWriter(&buf, cmdutil.FormatTable)
	if err := w.begin(empty.fields); err != nil {
		t.Fatal(err)
	}
	if err := w.row(vals("1", "Ann")); err != nil {
		t.Fatal(err)
	}
	if err := w.end(pgconn.NewCommandTag("SELECT 1"), true); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "id  name\n1   Ann\n"; got != want {
		t.Errorf("written by end: %q, want the whole table %q", got, want)
	}
}

// TestTableShowsTheRowsBeforeAnError: a result an error cut short still
// shows the rows that arrived (the error goes to stderr), as the other
// formats do; the table held them to size its columns.
func TestTableShowsTheRowsBeforeAnError(t *testing.T) {
	got := write(t, cmdutil.FormatTable, result{
		fields: empty.fields,
		rows:   [][][]byte{vals("1", "Ann"), vals("2", "Bob")},
		err:    errors.New("division by zero"),
	})
	if want := "id  name\n1   Ann\n2   Bob\n"; got != want {
		t.Errorf("got %q, want the rows that arrived %q", got, want)
	}
}
