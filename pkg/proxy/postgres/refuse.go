package postgres

import (
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf8"
)

// defaultRefusal is shown when a Verdict refuses without a message.
const defaultRefusal = "statement refused by the gateway's policy"

// refusalSQL returns a statement that makes the target itself raise the
// refusal (SQLSTATE 42501 with message and RefusalHint), so the target's
// transaction state
// follows the client's: a refused statement inside a transaction aborts it,
// exactly like a statement the target rejected. Both the DO body and the
// message are dollar-quoted with tags that cannot occur in the message, so
// no message can break out of the literal.
func refusalSQL(message string) string {
	message = strings.ReplaceAll(message, "\x00", "")
	if message == "" {
		message = defaultRefusal
	}
	wrapped := "$" + message + "$"
	outer, inner := "$g$", "$m$"
	for i := 0; strings.Contains(wrapped, outer) || strings.Contains(wrapped, inner); i++ {
		n := strconv.Itoa(i)
		outer, inner = "$g"+n+"$", "$m"+n+"$"
	}
	return "DO " + outer + "BEGIN RAISE EXCEPTION USING ERRCODE = '" + codeInsufficientPriv +
		"', MESSAGE = " + inner + message + inner + ", HINT = " + inner + RefusalHint + inner + "; END " + outer
}

// refusalMessage is message as the target reads it in the session's
// client_encoding: as it is in UTF8, and in ASCII otherwise (each
// non-ASCII character as \uXXXX), as the target would take UTF-8 bytes for
// characters of the client's encoding, or fail the refusal with an
// encoding error in a multibyte one.
func (s *session) refusalMessage(message string) string {
	if s.clientEnc.Load() == nil {
		return message
	}
	var b strings.Builder
	for _, r := range message {
		if r < utf8.RuneSelf {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToASCII(r) // '\u00e9'
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

// beginMsg starts a message of type typ on dst; finishMsg fills its length.
func beginMsg(dst []byte, typ byte) ([]byte, int) {
	return append(dst, typ, 0, 0, 0, 0), len(dst)
}

func finishMsg(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}

// appendQuery encodes a simple Query.
func appendQuery(dst []byte, sql string) []byte {
	dst, start := beginMsg(dst, 'Q')
	dst = append(dst, sql...)
	dst = append(dst, 0)
	return finishMsg(dst, start)
}

// appendRefusedParse encodes what replaces a refused Parse: a Parse of the
// refusal under the client's statement name, then a Bind to the unnamed
// portal and an Execute, so the target raises the refusal right at the
// Parse, before anything else of the client's pipeline runs.
func appendRefusedParse(dst []byte, name []byte, message string) []byte {
	dst, start := beginMsg(dst, 'P')
	dst = append(dst, name...)
	dst = append(dst, 0)
	dst = append(dst, refusalSQL(message)...)
	dst = append(dst, 0, 0, 0) // NUL, zero parameter types
	dst = finishMsg(dst, start)
	dst = appendZeroBind(dst, nil, name)
	dst, start = beginMsg(dst, 'E')
	dst = append(dst, 0, 0, 0, 0, 0) // unnamed portal, no row limit
	return finishMsg(dst, start)
}

// appendZeroBind encodes a Bind of stmt to portal with no parameters and no
// result formats: the refusal takes no parameters and returns no rows.
func appendZeroBind(dst []byte, portal, stmt []byte) []byte {
	dst, start := beginMsg(dst, 'B')
	dst = append(dst, portal...)
	dst = append(dst, 0)
	dst = append(dst, stmt...)
	dst = append(dst, 0)
	dst = append(dst, 0, 0, 0, 0, 0, 0) // formats, parameters, result formats
	return finishMsg(dst, start)
}

// appendCloseStmt encodes a Close of the prepared statement name.
func appendCloseStmt(dst []byte, name []byte) []byte {
	dst, start := beginMsg(dst, 'C')
	dst = append(dst, 'S')
	dst = append(dst, name...)
	dst = append(dst, 0)
	return finishMsg(dst, start)
}
