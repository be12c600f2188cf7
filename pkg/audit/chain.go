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

// hasher computes chain hashes reusing its buffers; the Log's writer keeps
// one so that sealing a batch does not allocate per field.
type hasher struct {
	buf  []byte
	keys []string
}

func (h *hasher) hash(e *Event) string {
	b := h.buf[:0]
	b = appendString(b, hashDomain)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	for _, s := range [...]string{e.Principal, e.Action, e.Target, e.Decision, e.Reason, e.Rule, e.PolicyCommit, e.Session} {
		b = appendString(b, s)
	}
	h.keys = h.keys[:0]
	for k := range e.Detail {
		h.keys = append(h.keys, k)
	}
	slices.Sort(h.keys)
	b = binary.BigEndian.AppendUint64(b, uint64(len(h.keys)))
	for _, k := range h.keys {
		b = appendString(b, k)
		b = appendString(b, e.Detail[k])
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
	normalize(e)
	e.Seq = seq
	e.Prev = prev
	e.Hash = h.hash(e)
}

// normalize makes e exactly representable by every store and by JSON: Time
// becomes UTC without a monotonic reading, at nanosecond precision, and
// invalid UTF-8 becomes U+FFFD (JSON would replace it anyway, and a hash
// must be over what is kept). Detail is copied only when it must change,
// because the caller still owns the map it passed in.
func normalize(e *Event) {
	e.Time = time.Unix(0, e.Time.UnixNano()).UTC()
	for _, p := range [...]*string{&e.Principal, &e.Action, &e.Target, &e.Decision, &e.Reason, &e.Rule, &e.PolicyCommit, &e.Session} {
		*p = validUTF8(*p)
	}
	for k, v := range e.Detail {
		if utf8.ValidString(k) && utf8.ValidString(v) {
			continue
		}
		fixed := make(map[string]string, len(e.Detail))
		for k, v := range e.Detail {
			fixed[validUTF8(k)] = validUTF8(v)
		}
		e.Detail = fixed
		break
	}
	if len(e.Detail) == 0 {
		e.Detail = nil
	}
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
