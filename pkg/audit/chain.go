package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Genesis is the Prev of the first event in every log.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// hashDomain starts every canonical encoding, so that a hash of an audit
// event can never be mistaken for a hash of anything else, and a future
// encoding can change the tag.
const hashDomain = "gatectl.audit.v1"

// ComputeHash returns the chain hash of e: the lowercase hex SHA-256 of its
// canonical encoding. The encoding covers every field except Hash, in this
// order, with integers as 8-byte big-endian two's complement and each string
// as its 8-byte big-endian byte length followed by its bytes:
//
//	string  "gatectl.audit.v1"
//	int64   Seq
//	int64   Time as Unix nanoseconds
//	string  Principal, Action, Target, Decision, Reason, Rule, PolicyCommit, Session
//	int64   number of Detail entries
//	string  key, string value   for each entry, keys in ascending byte order
//	string  Prev
//
// Every field is length-prefixed, so no two different events share an
// encoding. A nil and an empty Detail encode the same.
func (e Event) ComputeHash() string {
	var h hasher
	return h.hash(&e)
}

// hasher computes chain hashes reusing its buffers; the Log's sealer keeps
// one so that sealing a batch does not allocate per field.
type hasher struct {
	buf    []byte
	detail []detailEntry
}

type detailEntry struct{ k, v string }

func (h *hasher) hash(e *Event) string {
	h.sortDetail(e.Detail)
	return h.hashSorted(e)
}

// sortDetail collects d's entries into h.detail in ascending key order.
func (h *hasher) sortDetail(d map[string]string) {
	clear(h.detail) // the previous event's strings
	h.detail = h.detail[:0]
	for k, v := range d {
		h.detail = append(h.detail, detailEntry{k, v})
	}
	slices.SortFunc(h.detail, func(a, b detailEntry) int { return strings.Compare(a.k, b.k) })
}

// hashSorted hashes e with its Detail entries already in h.detail.
func (h *hasher) hashSorted(e *Event) string {
	b := h.buf[:0]
	b = appendString(b, hashDomain)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	for _, s := range [...]string{e.Principal, e.Action, e.Target, e.Decision, e.Reason, e.Rule, e.PolicyCommit, e.Session} {
		b = appendString(b, s)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(h.detail)))
	for _, kv := range h.detail {
		b = appendString(b, kv.k)
		b = appendString(b, kv.v)
	}
	b = appendString(b, e.Prev)
	h.buf = b
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// seal normalizes e so that it survives storage and JSON unchanged, then sets
// its position in the chain and its hash.
func (h *hasher) seal(e *Event, seq int64, prev string) {
	h.normalize(e)
	e.Seq = seq
	e.Prev = prev
	e.Hash = h.hashSorted(e)
}

// normalize makes e exactly representable by every store and by JSON: Time
// becomes UTC without a monotonic reading, at nanosecond precision, and
// invalid UTF-8 becomes U+FFFD (JSON would replace it anyway, and a hash
// must be over what is kept). Detail is copied only when it must change,
// because the caller still owns the map it passed in. It leaves the Detail
// entries sorted in h.detail for hashSorted.
func (h *hasher) normalize(e *Event) {
	e.Time = time.Unix(0, e.Time.UnixNano()).UTC()
	fields := [...]*string{&e.Principal, &e.Action, &e.Target, &e.Decision, &e.Reason, &e.Rule, &e.PolicyCommit, &e.Session}
	var high byte // the OR of every byte: below 0x80 means all ASCII, so valid
	for _, p := range fields {
		high |= orBytes(*p)
	}
	if high >= utf8.RuneSelf {
		for _, p := range fields {
			*p = validUTF8(*p)
		}
	}
	h.sortDetail(e.Detail)
	high = 0
	for _, kv := range h.detail {
		high |= orBytes(kv.k) | orBytes(kv.v)
	}
	if high >= utf8.RuneSelf && !h.detailValid() {
		fixed := make(map[string]string, len(e.Detail))
		for k, v := range e.Detail {
			fixed[validUTF8(k)] = validUTF8(v)
		}
		e.Detail = fixed
		h.sortDetail(e.Detail)
	}
	if len(e.Detail) == 0 {
		e.Detail = nil
	}
}

func (h *hasher) detailValid() bool {
	for _, kv := range h.detail {
		if !utf8.ValidString(kv.k) || !utf8.ValidString(kv.v) {
			return false
		}
	}
	return true
}

// orBytes returns the OR of s's bytes.
func orBytes(s string) (or byte) {
	for i := 0; i < len(s); i++ {
		or |= s[i]
	}
	return or
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
