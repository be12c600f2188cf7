package audit

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gatectl/gatectl/pkg/jsonstr"
)

// A JSON line is the JSON object encoding/json makes of an Event, with its
// Time in UTC, followed by a newline: the form in which a LineStore keeps
// events, so that the sqlite3 shell and SQL JSON functions read them.
// AppendJSONLine and the sealer write it without reflection; tests and a
// fuzz corpus hold it byte for byte to json.Marshal.

// AppendJSONLine appends e as one JSON line: byte for byte what json.Marshal
// produces for e with its Time in UTC, plus "\n". It fails only for a Time
// that JSON cannot represent (a year outside 0-9999). Detail keys come in
// the order encoding/json sorts them, by their bytes; keys that encode to
// the same JSON string (invalid UTF-8) are not deduplicated, as encoding/json
// does not either.
func AppendJSONLine(b []byte, e *Event) ([]byte, error) {
	var enc LineEncoder
	return enc.Append(b, e)
}

// LineEncoder is AppendJSONLine reusing its scratch space across calls, so
// that encoding a batch allocates nothing per event. The zero value is
// ready for use; it is not safe for concurrent use.
type LineEncoder struct{ h hasher }

// Append is AppendJSONLine.
func (enc *LineEncoder) Append(b []byte, e *Event) ([]byte, error) {
	t := e.Time.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return b, fmt.Errorf("encode audit event %d: time %v: year outside of range [0,9999]", e.Seq, e.Time)
	}
	h := &enc.h
	h.collectDetail(e)
	defer h.forget()
	h.classify(e)
	return h.appendLine(b, e, t), nil
}

// appendLine appends e's JSON line, with Time t, Detail in h.detail and
// plain strings marked in h.plain (see classify).
func (h *hasher) appendLine(b []byte, e *Event, t time.Time) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"time":"`...)
	b = appendRFC3339Nano(b, t)
	b = append(b, `","principal":`...)
	b = h.appendString(b, 0, e.Principal)
	b = append(b, `,"action":`...)
	b = h.appendString(b, 1, e.Action)
	b = append(b, `,"target":`...)
	b = h.appendString(b, 2, e.Target)
	b = append(b, `,"decision":`...)
	b = h.appendString(b, 3, e.Decision)
	b = append(b, `,"reason":`...)
	b = h.appendString(b, 4, e.Reason)
	b = append(b, `,"rule":`...)
	b = h.appendString(b, 5, e.Rule)
	b = append(b, `,"policy_commit":`...)
	b = h.appendString(b, 6, e.PolicyCommit)
	b = append(b, `,"session":`...)
	b = h.appendString(b, 7, e.Session)
	if len(h.detail) > 0 {
		b = append(b, `,"detail":{`...)
		for i, kv := range h.detail {
			if i > 0 {
				b = append(b, ',')
			}
			if i >= maxPlainDetail {
				b = jsonstr.Append(b, kv.Key)
				b = append(b, ':')
				b = jsonstr.Append(b, kv.Value)
				continue
			}
			b = h.appendString(b, detailBit(i), kv.Key)
			b = append(b, ':')
			b = h.appendString(b, detailBit(i)+1, kv.Value)
		}
		b = append(b, '}')
	}
	b = append(b, `,"prev":`...)
	b = h.appendString(b, prevBit, e.Prev)
	b = append(b, `,"hash":`...)
	b = h.appendString(b, hashBit, e.Hash)
	return append(b, "}\n"...)
}

// appendString appends s as a JSON string, copying it as it is when bit
// of h.plain says that it is plain.
func (h *hasher) appendString(b []byte, bit uint, s string) []byte {
	if h.plain&(1<<bit) != 0 {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	return jsonstr.Append(b, s)
}

// Bits of hasher.plain: the eight string fields in Event order take bits 0
// to 7, Detail entry i (in key order) bits 8+2i for its key and 9+2i for
// its value, up to maxPlainDetail entries; Prev and Hash the top two. A
// set bit promises that the string is ASCII that JSON writes as it is; a
// clear bit only sends it through jsonstr.Append.
const (
	maxPlainDetail = 26
	prevBit        = 62
	hashBit        = 63
)

// detailBit returns the bit of Detail entry i's key, for i below
// maxPlainDetail; its value's is the next one.
func detailBit(i int) uint { return 8 + 2*uint(i) }

// classify sets h.plain for e, with its Detail entries in h.detail.
func (h *hasher) classify(e *Event) {
	var m uint64
	for i, s := range [...]string{e.Principal, e.Action, e.Target, e.Decision, e.Reason, e.Rule, e.PolicyCommit, e.Session} {
		m |= bit(h.isPlain(s), uint(i))
	}
	dm, _ := h.classifyDetail()
	h.plain = m | dm | bit(h.isPlain(e.Prev), prevBit) | bit(h.isPlain(e.Hash), hashBit)
}

// classifyDetail returns the plain bits of the entries in h.detail, and
// whether every entry is plain, including those beyond maxPlainDetail.
func (h *hasher) classifyDetail() (m uint64, all bool) {
	all = true
	for i, kv := range h.detail {
		k, v := h.isPlain(kv.Key), h.isPlain(kv.Value)
		all = all && k && v
		if i < maxPlainDetail {
			m |= bit(k, detailBit(i)) | bit(v, detailBit(i)+1)
		}
	}
	return m, all
}

func bit(set bool, n uint) uint64 {
	if set {
		return 1 << n
	}
	return 0
}

// appendRFC3339Nano appends t, which must be in UTC with a year in 0-9999,
// as t.AppendFormat(time.RFC3339Nano) does: fractional seconds with
// trailing zeros trimmed, none when zero, and "Z".
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	sec := t.Unix()
	days, rem := sec/86400, sec%86400
	if rem < 0 {
		days, rem = days-1, rem+86400
	}
	y, m, d := civil(days)
	b = appendDigits(b, y, 4)
	b = append(b, '-')
	b = appendDigits(b, m, 2)
	b = append(b, '-')
	b = appendDigits(b, d, 2)
	b = append(b, 'T')
	b = appendDigits(b, int(rem/3600), 2)
	b = append(b, ':')
	b = appendDigits(b, int(rem/60%60), 2)
	b = append(b, ':')
	b = appendDigits(b, int(rem%60), 2)
	if ns := t.Nanosecond(); ns != 0 {
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		b = append(b, '.')
		b = appendDigits(b, ns, digits)
	}
	return append(b, 'Z')
}

// civil returns the proleptic Gregorian date of the given day since
// 1970-01-01 (Howard Hinnant's days-to-civil algorithm).
func civil(days int64) (year, month, day int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], from March
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	y := yoe + era*400
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

// appendDigits appends v, which is not negative, in exactly n decimal
// digits, zero-padded.
func appendDigits(b []byte, v, n int) []byte {
	var buf [9]byte
	for i := n - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, buf[:n]...)
}
