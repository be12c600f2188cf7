package audit

import "github.com/gatectl/gatectl/pkg/jsonstr"

// maxSeen bounds the length of the strings hasher.seen keeps.
const maxSeen = 256

// isPlain is jsonstr.Plain(s), remembering plain strings: most strings of an
// event repeat those of the events before it (principal, session, Detail
// keys, the statement text), and comparing with a string that shares
// their bytes costs less than scanning them again.
func (h *hasher) isPlain(s string) bool {
	if len(s) == 0 {
		return true
	}
	slot := &h.seen[(len(s)*31+int(s[0])*7+int(s[len(s)-1]))%len(h.seen)]
	if *slot == s {
		return true
	}
	if !jsonstr.Plain(s) {
		return false
	}
	if len(s) <= maxSeen {
		*slot = s
	}
	return true
}
