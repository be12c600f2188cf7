package exec

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
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
	cut    bool // an error ends the result before its tag
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
