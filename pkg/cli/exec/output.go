package exec

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
	"github.com/gatectl/gatectl/pkg/jsonstr"
)

// resultWriter writes the results of a request in one format as they
// arrive: begin with a result's columns (not called for a result without
// any, such as an INSERT's), row for each of its rows (values in text
// format, nil for NULL; only valid during the call), end with its command
// tag once it completed, fail with the error that ended the request (in
// place of end for a result it cut short; at most once), and close after
// the last result.
type resultWriter interface {
	begin(fields []pgconn.FieldDescription) error
	row(values [][]byte) error
	end(tag pgconn.CommandTag, columns bool) error
	fail(err error) error
	close() error
}

func newResultWriter(w io.Writer, format cmdutil.Format) resultWriter {
	bw := bufio.NewWriterSize(w, 64<<10)
	switch format {
	case cmdutil.FormatJSON:
		return &jsonWriter{w: bw}
	case cmdutil.FormatCSV:
		return &csvWriter{bw: bw, w: csv.NewWriter(bw)}
	case cmdutil.FormatTSV:
		return &tsvWriter{w: bw}
	}
	return &tableWriter{w: bw}
}

// tsvWriter writes tab-separated lines in the text form of PostgreSQL's
// COPY: backslash, tab, newline and carriage return escaped, NULL as \N, so
// every value comes back exactly.
type tsvWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (t *tsvWriter) begin(fields []pgconn.FieldDescription) error {
	t.buf = t.buf[:0]
	for i, fd := range fields {
		if i > 0 {
			t.buf = append(t.buf, '\t')
		}
		t.buf = appendCopyText(t.buf, []byte(fd.Name))
	}
	t.buf = append(t.buf, '\n')
	_, err := t.w.Write(t.buf)
	return err
}

func (t *tsvWriter) row(values [][]byte) error {
	t.buf = t.buf[:0]
	for i, v := range values {
		if i > 0 {
			t.buf = append(t.buf, '\t')
		}
		if v == nil {
			t.buf = append(t.buf, `\N`...)
		} else {
			t.buf = appendCopyText(t.buf, v)
		}
	}
	t.buf = append(t.buf, '\n')
	_, err := t.w.Write(t.buf)
	return err
}

func (t *tsvWriter) end(pgconn.CommandTag, bool) error { return nil }
func (t *tsvWriter) fail(error) error                  { return nil }
func (t *tsvWriter) close() error                      { return t.w.Flush() }

func appendCopyText(dst, v []byte) []byte {
	for _, c := range v {
		switch c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// csvWriter writes RFC 4180 CSV, a header line per result and a blank
// line between results. No record is a blank line itself: a row of one
// empty field is written "".
type csvWriter struct {
	bw      *bufio.Writer
	w       *csv.Writer
	rec     []string
	results int // headers written
}

func (c *csvWriter) begin(fields []pgconn.FieldDescription) error {
	if c.results > 0 {
		// encoding/csv writes an empty record as a bare line end.
		if err := c.w.Write(nil); err != nil {
			return err
		}
	}
	c.results++
	c.rec = c.rec[:0]
	for _, fd := range fields {
		c.rec = append(c.rec, fd.Name)
	}
	return c.w.Write(c.rec)
}

func (c *csvWriter) row(values [][]byte) error {
	if len(values) == 1 && len(values[0]) == 0 {
		// encoding/csv would write a blank line, which readers skip and
		// which would read as the end of the result.
		c.w.Flush()
		if err := c.w.Error(); err != nil {
			return err
		}
		_, err := c.bw.WriteString("\"\"\n")
		return err
	}
	c.rec = c.rec[:0]
	for _, v := range values {
		c.rec = append(c.rec, string(v))
	}
	return c.w.Write(c.rec)
}

func (c *csvWriter) end(pgconn.CommandTag, bool) error { return nil }
func (c *csvWriter) fail(error) error                  { return nil }

func (c *csvWriter) close() error {
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return err
	}
	return c.bw.Flush()
}

// tableWriter aligns columns for a terminal, with a blank line between
// results. It sizes them from the first tableSample rows, which it holds,
// then writes the rest as they come in the same widths (a longer value
// pushes its line out rather than being cut), so a large result does not
// have to fit in memory. Names and values are written as tableText shows
// them.
type tableWriter struct {
	w       *bufio.Writer
	header  []string
	widths  []int
	sample  [][]string
	sampled bool // the widths are fixed and rows go straight out
	results int  // headers written
	line    []byte
}

const tableSample = 1000

func (t *tableWriter) begin(fields []pgconn.FieldDescription) error {
	t.header, t.sample, t.sampled = t.header[:0], t.sample[:0], false
	t.widths = t.widths[:0]
	for _, fd := range fields {
		name := tableText([]byte(fd.Name))
		t.header = append(t.header, name)
		t.widths = append(t.widths, utf8.RuneCountInString(name))
	}
	return nil
}

func (t *tableWriter) row(values [][]byte) error {
	cells := make([]string, len(values))
	for i, v := range values {
		cells[i] = tableText(v)
	}
	if t.sampled {
		return t.writeLine(cells)
	}
	for i, c := range cells {
		if i < len(t.widths) {
			t.widths[i] = max(t.widths[i], utf8.RuneCountInString(c))
		}
	}
	t.sample = append(t.sample, cells)
	if len(t.sample) == tableSample {
		return t.flushSample()
	}
	return nil
}

func (t *tableWriter) flushSample() error {
	t.sampled = true
	if t.results > 0 {
		if err := t.w.WriteByte('\n'); err != nil {
			return err
		}
	}
	t.results++
	if err := t.writeLine(t.header); err != nil {
		return err
	}
	for _, cells := range t.sample {
		if err := t.writeLine(cells); err != nil {
			return err
		}
	}
	clear(t.sample)
	t.sample = t.sample[:0]
	return nil
}

func (t *tableWriter) writeLine(cells []string) error {
	t.line = t.line[:0]
	for i, c := range cells {
		if i > 0 {
			t.line = append(t.line, ' ', ' ')
		}
		t.line = append(t.line, c...)
		if i < len(cells)-1 && i < len(t.widths) {
			for n := utf8.RuneCountInString(c); n < t.widths[i]; n++ {
				t.line = append(t.line, ' ')
			}
		}
	}
	t.line = append(t.line, '\n')
	_, err := t.w.Write(t.line)
	return err
}

func (t *tableWriter) end(_ pgconn.CommandTag, columns bool) error {
	if columns && !t.sampled {
		if err := t.flushSample(); err != nil {
			return err
		}
	}
	// A terminal shows the row count (on stderr) next: after the table.
	return t.w.Flush()
}

// fail writes the rows of a result that an error cut short, if the table
// still held them: they arrived, and the error follows on stderr.
func (t *tableWriter) fail(error) error {
	if !t.sampled && len(t.header) > 0 {
		return t.flushSample()
	}
	return nil
}

func (t *tableWriter) close() error { return t.w.Flush() }

// tableText is v as a table shows it: one line whose columns stay in
// place, and which a value cannot fake. Backslash, control characters
// (C0, DEL, C1), line and paragraph separators and the bidirectional
// controls that reorder what a terminal shows are escaped: \\, \n, \r, \t,
// \xHH for other bytes below 0x80, \uHHHH for other characters; each byte
// of invalid UTF-8 is \xHH too (80 to FF, so never a character's escape).
func tableText(v []byte) string {
	i := 0
	for i < len(v) {
		c := v[i]
		if c >= 0x20 && c < 0x7f && c != '\\' {
			i++
			continue
		}
		r, n := utf8.DecodeRune(v[i:])
		if c >= utf8.RuneSelf && r != utf8.RuneError && !tableEscapes(r) {
			i += n
			continue
		}
		break
	}
	if i == len(v) {
		return string(v)
	}
	const hex = "0123456789abcdef"
	out := make([]byte, i, len(v)+16)
	copy(out, v[:i])
	for i < len(v) {
		c := v[i]
		switch {
		case c == '\\':
			out = append(out, '\\', '\\')
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\r':
			out = append(out, '\\', 'r')
		case c == '\t':
			out = append(out, '\\', 't')
		case c < 0x20 || c == 0x7f:
			out = append(out, '\\', 'x', hex[c>>4], hex[c&0xf])
		case c < utf8.RuneSelf:
			out = append(out, c)
		default:
			r, n := utf8.DecodeRune(v[i:])
			switch {
			case r == utf8.RuneError && n == 1:
				out = append(out, '\\', 'x', hex[c>>4], hex[c&0xf])
			case tableEscapes(r):
				out = append(out, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
			default:
				out = append(out, v[i:i+n]...)
			}
			i += n
			continue
		}
		i++
	}
	return string(out)
}

// tableEscapes reports whether tableText escapes the non-ASCII r.
func tableEscapes(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f, // C1 controls
		r == 0x2028, r == 0x2029, // line and paragraph separators
		r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	}
	return false
}

// jsonWriter writes an array with one object per result that has columns
// or a command tag: {"columns": [...], "rows": [{...}, ...], "command":
// "SELECT 2"}. Rows are objects keyed by column name; a name that repeats
// in a result gets a _2, _3… suffix, and "columns" lists the keys as used.
// The error that ends a request takes the place of "command" in the
// object of the result it cut short, after the rows that came before it,
// or has an object of its own: {"error": {"code": "22012", "message":
// "division by zero"}}, so that output cut short never reads as complete.
type jsonWriter struct {
	w       *bufio.Writer
	started bool // the array is open
	results int  // objects written
	keys    []string
	members [][]byte // each key encoded, with its colon: "id":
	types   []uint32
	rows    int64
	open    bool // an object is open
	buf     []byte
}

func (j *jsonWriter) start() {
	if !j.started {
		j.w.WriteString("[")
		j.started = true
	}
	if j.results > 0 {
		j.w.WriteString(",")
	}
	j.w.WriteString("\n  {")
	j.results++
	j.open = true
}

func (j *jsonWriter) begin(fields []pgconn.FieldDescription) error {
	j.start()
	j.keys, j.types, j.rows = uniqueNames(j.keys[:0], fields), j.types[:0], 0
	j.members = j.members[:0]
	for i, fd := range fields {
		j.types = append(j.types, fd.DataTypeOID)
		j.members = append(j.members, append(jsonstr.Append(nil, j.keys[i]), ": "...))
	}
	j.buf = append(j.buf[:0], "\n    \"columns\": ["...)
	for i, k := range j.keys {
		if i > 0 {
			j.buf = append(j.buf, ", "...)
		}
		j.buf = jsonstr.Append(j.buf, k)
	}
	j.buf = append(j.buf, "],\n    \"rows\": ["...)
	_, err := j.w.Write(j.buf)
	return err
}

func (j *jsonWriter) row(values [][]byte) error {
	if len(values) != len(j.members) {
		return fmt.Errorf("the gateway sent a row of %d values for %d columns", len(values), len(j.members))
	}
	j.buf = j.buf[:0]
	if j.rows > 0 {
		j.buf = append(j.buf, ',')
	}
	j.buf = append(j.buf, "\n      {"...)
	for i, v := range values {
		if i > 0 {
			j.buf = append(j.buf, ", "...)
		}
		j.buf = append(j.buf, j.members[i]...)
		j.buf = appendJSONValue(j.buf, j.types[i], v)
	}
	j.buf = append(j.buf, '}')
	j.rows++
	_, err := j.w.Write(j.buf)
	return err
}

func (j *jsonWriter) end(tag pgconn.CommandTag, columns bool) error {
	j.buf = j.buf[:0]
	switch {
	case !columns:
		j.start()
	case j.rows > 0:
		j.buf = append(j.buf, "\n    ],"...)
	default:
		j.buf = append(j.buf, "],"...)
	}
	j.buf = append(j.buf, "\n    \"command\": "...)
	j.buf = jsonstr.Append(j.buf, tag.String())
	j.buf = append(j.buf, "\n  }"...)
	j.open = false
	_, err := j.w.Write(j.buf)
	return err
}

func (j *jsonWriter) fail(err error) error {
	j.buf = j.buf[:0]
	switch {
	case !j.open:
		j.start()
	case j.rows > 0:
		j.buf = append(j.buf, "\n    ],"...)
	default:
		j.buf = append(j.buf, "],"...)
	}
	j.buf = append(j.buf, "\n    \"error\": "...)
	j.buf = appendJSONError(j.buf, err)
	j.buf = append(j.buf, "\n  }"...)
	j.open = false
	_, werr := j.w.Write(j.buf)
	return werr
}

// appendJSONError appends err as an object: the SQLSTATE "code",
// "message", and "detail" and "hint" where PostgreSQL or the gateway gave
// them; an error that is not PostgreSQL's (a lost connection) has only a
// message.
func appendJSONError(dst []byte, err error) []byte {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		dst = append(dst, `{"message": `...)
		dst = jsonstr.Append(dst, err.Error())
		return append(dst, '}')
	}
	dst = append(dst, `{"code": `...)
	dst = jsonstr.Append(dst, pe.Code)
	dst = append(dst, `, "message": `...)
	dst = jsonstr.Append(dst, pe.Message)
	if pe.Detail != "" {
		dst = append(dst, `, "detail": `...)
		dst = jsonstr.Append(dst, pe.Detail)
	}
	if pe.Hint != "" {
		dst = append(dst, `, "hint": `...)
		dst = jsonstr.Append(dst, pe.Hint)
	}
	return append(dst, '}')
}

func (j *jsonWriter) close() error {
	if j.open {
		// A result cut short by an error: close its rows and object, so
		// that what was printed is still valid JSON.
		if j.rows > 0 {
			j.w.WriteString("\n    ")
		}
		j.w.WriteString("]\n  }")
	}
	if !j.started {
		j.w.WriteString("[")
	}
	if j.results > 0 {
		j.w.WriteString("\n")
	}
	j.w.WriteString("]\n")
	return j.w.Flush()
}

// uniqueNames returns the fields' names, a repeated one suffixed _2, _3…
// (skipping a suffixed name that is itself a column).
func uniqueNames(dst []string, fields []pgconn.FieldDescription) []string {
	taken := make(map[string]bool, len(fields))
	for _, fd := range fields {
		taken[fd.Name] = true
	}
	used := make(map[string]bool, len(fields))
	for _, fd := range fields {
		name := fd.Name
		for n := 2; used[name]; n++ {
			if cand := fd.Name + "_" + strconv.Itoa(n); !used[cand] && !taken[cand] {
				name = cand
			}
		}
		used[name] = true
		dst = append(dst, name)
	}
	return dst
}

// Type OIDs whose text form maps to a JSON value.
const (
	oidBool    = 16
	oidInt8    = 20
	oidInt2    = 21
	oidInt4    = 23
	oidOID     = 26
	oidJSON    = 114
	oidFloat4  = 700
	oidFloat8  = 701
	oidNumeric = 1700
	oidJSONB   = 3802
)

// appendJSONValue appends the text-format value v of a column of type oid:
// null, a boolean, a number, a json document or a string.
func appendJSONValue(dst []byte, oid uint32, v []byte) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	switch oid {
	case oidBool:
		switch string(v) {
		case "t":
			return append(dst, "true"...)
		case "f":
			return append(dst, "false"...)
		}
	case oidInt2, oidInt4, oidInt8, oidOID, oidFloat4, oidFloat8, oidNumeric:
		// NaN and Infinity are not JSON numbers; they stay strings.
		if isJSONNumber(v) {
			return append(dst, v...)
		}
	case oidJSON, oidJSONB:
		if json.Valid(v) {
			return append(dst, v...)
		}
	}
	// The string aliases v only while Append copies it.
	return jsonstr.Append(dst, unsafe.String(unsafe.SliceData(v), len(v)))
}

// isJSONNumber reports whether v is a number in JSON's grammar.
func isJSONNumber(v []byte) bool {
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case i < len(v) && v[i] >= '1' && v[i] <= '9':
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		if i == len(v) || v[i] < '0' || v[i] > '9' {
			return false
		}
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if i == len(v) || v[i] < '0' || v[i] > '9' {
			return false
		}
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
	}
	return i == len(v)
}
