package sqlite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gatectl/gatectl/pkg/audit"
)

// An audit block keeps its events as JSON Lines: each event is the JSON
// object encoding/json makes of an audit.Event (time in UTC), followed by a
// newline. The sqlite3 shell, `audit export` and json_each read the same
// text. appendEventLine writes it on the audit writer's per-event path
// without reflection; decodeEventLine reads it back with encoding/json,
// since reading is not hot.

// lineEncoder appends event lines reusing its scratch space, so that
// encoding a batch allocates nothing per event. It is not safe for
// concurrent use.
type lineEncoder struct {
	keys []string
}

// appendEventLine appends e as one JSON line, byte for byte what
// json.Marshal produces for e with its Time in UTC, plus "\n". It fails only
// for a Time that JSON cannot represent (a year outside 0-9999).
func (enc *lineEncoder) appendEventLine(b []byte, e *audit.Event) ([]byte, error) {
	t := e.Time.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return b, fmt.Errorf("encode audit event %d: time %v: year outside of range [0,9999]", e.Seq, e.Time)
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","principal":`...)
	b = appendJSONString(b, e.Principal)
	b = append(b, `,"action":`...)
	b = appendJSONString(b, e.Action)
	b = append(b, `,"target":`...)
	b = appendJSONString(b, e.Target)
	b = append(b, `,"decision":`...)
	b = appendJSONString(b, e.Decision)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, e.Reason)
	b = append(b, `,"rule":`...)
	b = appendJSONString(b, e.Rule)
	b = append(b, `,"policy_commit":`...)
	b = appendJSONString(b, e.PolicyCommit)
	b = append(b, `,"session":`...)
	b = appendJSONString(b, e.Session)
	if len(e.Detail) > 0 {
		b = append(b, `,"detail":`...)
		b = enc.appendDetail(b, e.Detail)
	}
	b = append(b, `,"prev":`...)
	b = appendJSONString(b, e.Prev)
	b = append(b, `,"hash":`...)
	b = appendJSONString(b, e.Hash)
	return append(b, "}\n"...), nil
}

// appendDetail appends d as a JSON object with its keys in the order
// encoding/json sorts them: by their UTF-8 bytes as Go strings. Keys that
// encode to the same JSON string (invalid UTF-8) are not deduplicated, as
// encoding/json does not either.
func (enc *lineEncoder) appendDetail(b []byte, d map[string]string) []byte {
	enc.keys = enc.keys[:0]
	for k := range d {
		enc.keys = append(enc.keys, k)
	}
	slices.Sort(enc.keys)
	b = append(b, '{')
	for i, k := range enc.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, d[k])
	}
	clear(enc.keys) // the keys belong to an event that is about to be freed
	return append(b, '}')
}

// jsonSafe marks the ASCII bytes encoding/json writes as they are (with its
// default HTML escaping: '<', '>' and '&' are escaped).
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it: the short escapes \b \f \n \r \t, \u00XX for other control
// bytes and for '<' '>' '&', \u2028 and \u2029 escaped, and each byte of
// invalid UTF-8 replaced by \ufffd.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

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
// the way appendEventLine writes it.
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
