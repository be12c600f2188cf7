package sqlite

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/gatectl/gatectl/pkg/audit"
)

// An audit block keeps its events as JSON Lines, as audit.AppendJSONLine
// writes them: the sqlite3 shell, `audit export` and json_each read the
// same text. decodeEventLine reads a line back with encoding/json, since
// reading is not hot.

// errEmptyLine is the decode error of a blank line inside a block, which
// the writer never produces.
var errEmptyLine = errors.New("empty line")

// decodeEventLine reads one event line (without its newline). Time comes
// back in UTC and an empty Detail as nil, as the audit log seals them.
func decodeEventLine(line []byte) (audit.Event, error) {
	var e audit.Event
	if len(bytes.TrimSpace(line)) == 0 {
		return e, errEmptyLine
	}
	if err := json.Unmarshal(line, &e); err != nil {
		return audit.Event{}, err
	}
	e.Time = e.Time.UTC()
	if len(e.Detail) == 0 {
		e.Detail = nil
	}
	return e, nil
}

// lineSeq reads the seq an event line starts with, for naming a line that
// cannot be decoded as a whole. ok is false when the line does not start
// the way audit.AppendJSONLine writes it.
func lineSeq(line []byte) (seq int64, ok bool) {
	rest, found := bytes.CutPrefix(line, []byte(`{"seq":`))
	if !found {
		return 0, false
	}
	end := 0
	for end < len(rest) && (rest[end] == '-' && end == 0 || '0' <= rest[end] && rest[end] <= '9') {
		end++
	}
	seq, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	if err != nil {
		return 0, false
	}
	return seq, true
}
