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
// one so that sealing a batch does not allocate per field. It keeps the
// last event's Detail entries until forget, and up to len(seen) short
// strings, which is all it keeps alive.
type hasher struct {
	buf []byte
	// detail holds the Detail entries of the last event, sorted.
	detail []Field
	// plain marks the strings of the event last classified, normalized
	// or sealed that JSON writes as they are (see appendLine).
	plain uint64
	// lastHash is the Hash of the event sealed last.
	lastHash string
	// seen holds strings found plain lately (see hasher.isPlain).
	seen [64]string
}

func (h *hasher) hash(e *Event) string {
	h.collectDetail(e)
	return h.hashSorted(e)
}

// collectDetail collects e's Detail entries, from Details if it is set,
// into h.detail in ascending key order.
func (h *hasher) collectDetail(e *Event) {
	if e.Details == nil {
		h.sortDetail(e.Detail)
		return
	}
	h.forget()
	h.detail = e.Details.AppendDetail(h.detail)
	h.sortEntries()
	// Distinct keys, as in a map: of equal keys the last one appended wins,
	// and the sort is stable.
	d := h.detail
	out := d[:0]
	for i := range d {
		if i+1 < len(d) && d[i+1].Key == d[i].Key {
			continue
		}
		out = append(out, d[i])
	}
	clear(d[len(out):])
	h.detail = out
}

// sortDetail collects d's entries into h.detail in ascending key order.
func (h *hasher) sortDetail(d map[string]string) {
	// Events of one kind carry the same keys: when d has as many entries
	// as the previous Detail and all of its keys, which are distinct,
	// their order is known, and looking the values up costs less than
	// ranging over d and sorting.
	if n := len(h.detail); n > 0 && n == len(d) {
		same := true
		for i := range h.detail {
			v, ok := d[h.detail[i].Key]
			if !ok {
				same = false
				break
			}
			h.detail[i].Value = v
		}
		if same {
			return
		}
	}
	h.forget()
	for k, v := range d {
		h.detail = append(h.detail, Field{k, v})
	}
	h.sortEntries()
}

// sortEntries sorts h.detail by key, keeping the order of equal keys.
func (h *hasher) sortEntries() {
	sorted := h.detail
	if len(sorted) > 12 {
		slices.SortStableFunc(sorted, func(a, b Field) int { return strings.Compare(a.Key, b.Key) })
		return
	}
	// Insertion sort: a Detail is small, and a call per comparison would
	// cost more than the comparisons. Entries that come in order, as
	// Details usually appends them, cost one comparison each.
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && sorted[j].Key < sorted[j-1].Key; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
}

// detailMap returns the entries in h.detail as a map; nil when there are
// none.
func (h *hasher) detailMap() map[string]string {
	if len(h.detail) == 0 {
		return nil
	}
	m := make(map[string]string, len(h.detail))
	for _, kv := range h.detail {
		m[kv.Key] = kv.Value
	}
	return m
}

// forget drops the strings of the last event, so that a hasher kept
// across batches does not keep them alive.
func (h *hasher) forget() {
	clear(h.detail)
	h.detail = h.detail[:0]
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
		b = appendString(b, kv.Key)
		b = appendString(b, kv.Value)
	}
	b = appendString(b, e.Prev)
	h.buf = b
	sum := sha256.Sum256(b)
	var digits [2 * sha256.Size]byte // on the stack: only the string is allocated
	hex.Encode(digits[:], sum[:])
	return string(digits[:])
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// seal normalizes e so that it survives storage and JSON unchanged, then sets
// its position in the chain and its hash. It leaves e's Detail entries
// sorted in h.detail and its plain strings marked in h.plain, ready for
// appendLine.
func (h *hasher) seal(e *Event, seq int64, prev string) {
	h.normalize(e)
	e.Seq = seq
	e.Prev = prev
	e.Hash = h.hashSorted(e)
	// Hash is lowercase hex, and so is Prev when it is the hash sealed
	// last, as it is but for the first event after Open.
	h.plain |= bit(prev == h.lastHash || h.isPlain(prev), prevBit) | 1<<hashBit
	h.lastHash = e.Hash
}

// normalize makes e exactly representable by every store and by JSON: Time
// becomes UTC without a monotonic reading, at nanosecond precision, and
// invalid UTF-8 becomes U+FFFD (JSON would replace it anyway, and a hash
// must be over what is kept). Detail is copied only when it must change,
// because the caller still owns the map it passed in. It leaves the Detail
// entries sorted in h.detail for hashSorted, and h.plain marking the plain
// strings among the fields and Detail.
func (h *hasher) normalize(e *Event) {
	e.Time = time.Unix(0, e.Time.UnixNano()).UTC()
	var m uint64
	// A plain string is ASCII, so valid; most are plain.
	for i, p := range [...]*string{&e.Principal, &e.Action, &e.Target, &e.Decision, &e.Reason, &e.Rule, &e.PolicyCommit, &e.Session} {
		if h.isPlain(*p) {
			m |= 1 << i
		} else {
			*p = validUTF8(*p)
		}
	}
	h.collectDetail(e)
	dm, all := h.classifyDetail()
	if !all && !h.detailValid() {
		fixed := make(map[string]string, len(h.detail))
		for _, kv := range h.detail {
			fixed[validUTF8(kv.Key)] = validUTF8(kv.Value)
		}
		e.Detail, e.Details = fixed, nil
		h.sortDetail(e.Detail)
		dm, _ = h.classifyDetail()
	}
	if len(e.Detail) == 0 {
		e.Detail = nil
	}
	h.plain = m | dm
}

func (h *hasher) detailValid() bool {
	for _, kv := range h.detail {
		if !utf8.ValidString(kv.Key) || !utf8.ValidString(kv.Value) {
			return false
		}
	}
	return true
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
