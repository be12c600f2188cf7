package cmdutil

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/gatectl/gatectl/pkg/shown"
)

// Format is an output format chosen with --output.
type Format string

const (
	FormatAuto  Format = ""
	FormatTable Format = "table"
	FormatJSON  Format = "json"
	FormatCSV   Format = "csv"
	FormatTSV   Format = "tsv"
)

// ParseFormat parses an --output value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatAuto, FormatTable, FormatJSON, FormatCSV, FormatTSV:
		return f, nil
	}
	return "", Usagef("--output %q is not one of: table, json, csv, tsv", s)
}

// Table is tabular output: human-aligned on a terminal, TSV or CSV for
// scripts. The table and TSV formats escape what a terminal would act on in
// every cell (shown.String), so one value stays on one line of one column;
// CSV and JSON keep values as they are, quoted and escaped by their own
// rules.
type Table struct {
	Header []string
	Rows   [][]string
}

// Add appends a row.
func (t *Table) Add(cells ...string) { t.Rows = append(t.Rows, cells) }

// Write writes the table in format f (FormatJSON writes an array of objects
// keyed by the header).
func (t *Table) Write(w io.Writer, f Format) error {
	switch f {
	case FormatJSON:
		objs := make([]map[string]string, 0, len(t.Rows))
		for _, r := range t.Rows {
			o := make(map[string]string, len(t.Header))
			for i, h := range t.Header {
				if i < len(r) {
					o[strings.ToLower(h)] = r[i]
				}
			}
			objs = append(objs, o)
		}
		return WriteJSON(w, objs)
	case FormatCSV:
		cw := csv.NewWriter(w)
		cw.Write(t.Header)
		cw.WriteAll(t.Rows)
		return cw.Error()
	case FormatTSV:
		// One line per row, one field per column: see printableRow.
		for _, r := range append([][]string{t.Header}, t.Rows...) {
			if _, err := fmt.Fprintln(w, printableRow(r, "\t")); err != nil {
				return err
			}
		}
		return nil
	default:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, printableRow(t.Header, "\t"))
		for _, r := range t.Rows {
			fmt.Fprintln(tw, printableRow(r, "\t"))
		}
		return tw.Flush()
	}
}

// WriteRows writes the rows without the header, as Write would, except
// that the table format separates cells by two spaces rather than aligning
// them: for output that grows a row at a time (audit tail --follow).
func (t *Table) WriteRows(w io.Writer, f Format) error {
	if f == FormatCSV {
		cw := csv.NewWriter(w)
		cw.WriteAll(t.Rows)
		return cw.Error()
	}
	sep := "  "
	if f == FormatTSV {
		sep = "\t"
	}
	for _, r := range t.Rows {
		if _, err := fmt.Fprintln(w, printableRow(r, sep)); err != nil {
			return err
		}
	}
	return nil
}

// printableRow is r's cells made safe to print (shown.String) and joined by
// sep: text in the audit log can come from anyone who reached a listener,
// such as the database name of a refused connection, and printed raw it
// could rewrite what an auditor sees.
func printableRow(r []string, sep string) string {
	clean := make([]string, len(r))
	for i, c := range r {
		clean[i] = shown.String(c)
	}
	return strings.Join(clean, sep)
}

// WriteJSON writes v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
