package policy

import (
	"fmt"
	"strings"
)

// Limits on the shape of one policy file, checked by checkShape before the
// file reaches the TOML decoder. Real policies nest a few levels and use keys
// of two or three parts; the limits leave room for ten times that.
const (
	// maxNesting is how deep arrays and inline tables may nest. The TOML
	// decoder parses nested values recursively, and a value nested a few
	// million deep overflows the goroutine stack: a fatal error that
	// recover cannot catch, so the gateway would die instead of keeping its
	// last good policy.
	maxNesting = 32
	// maxKeyParts is how many parts the full path of a key may have: its
	// [table] header, its own dotted parts and those of the inline tables
	// around it. The decoder's cost per key grows with the square of the
	// path's length.
	maxKeyParts = 32
)

// shapeError is a file whose shape checkShape refuses, at the line where
// it went past a limit.
type shapeError struct {
	line int
	msg  string
}

// checkShape scans src as TOML tokens, without building anything, and
// refuses it if arrays and inline tables nest deeper than maxNesting or a key
// path has more than maxKeyParts parts. It understands strings (basic,
// literal and their multi-line forms, with escapes) and comments, so that
// brackets, dots and quotes inside them do not count. It is linear in
// len(src) and uses memory bounded by the limits. Text that is not valid TOML
// is left to the decoder, which reports it without recursing.
func checkShape(src string) *shapeError {
	s := shapeScanner{src: src}
	s.newLine()
	for s.i < len(src) {
		if s.err != nil {
			break
		}
		c := src[s.i]
		s.i++
		switch c {
		case '\n':
			if len(s.stack) == 0 {
				s.newLine()
			}
		case '#':
			s.skipComment()
		case '"', '\'':
			s.skipString(c)
		case '[':
			if s.key && len(s.stack) == 0 && !s.started {
				s.header, s.parts = true, 1 // a [table] or [[array]] header: its path is absolute
			}
			s.push(c)
		case '{':
			s.push(c)
			s.startKey(s.stack[len(s.stack)-1].base)
		case ']', '}':
			s.pop()
		case ',':
			if n := len(s.stack); n > 0 && s.stack[n-1].open == '{' {
				s.startKey(s.stack[n-1].base)
			}
		case '.':
			if s.key {
				s.addPart()
			}
		case '=':
			if s.key && s.parts > maxKeyParts {
				s.failKeyParts()
			}
			s.key = false
		case ' ', '\t', '\r':
		default:
			s.started = true
		}
	}
	return s.err
}

// shapeScanner is checkShape's state.
type shapeScanner struct {
	src string
	i   int // next byte to read
	err *shapeError

	stack   []shapeFrame // open arrays, inline tables and header brackets
	table   int          // parts of the current [table] header's path
	key     bool         // reading a key (or a header), not a value
	header  bool         // the key is a [table] header
	started bool         // something other than space was read on this line
	parts   int          // parts of the key's full path so far
}

// shapeFrame is one open bracket.
type shapeFrame struct {
	open byte // '[' or '{'
	base int  // parts of the path of the key whose value it opens
}

// newLine starts a line outside any value: it begins with a key or a header.
func (s *shapeScanner) newLine() {
	s.header, s.started = false, false
	s.startKey(s.table)
}

// startKey starts a key inside a table whose path has base parts. Its first
// part is checked against maxKeyParts at the key's '=': a line may turn out
// to be a header, or an inline table empty.
func (s *shapeScanner) startKey(base int) {
	s.key, s.parts = true, base+1
}

// addPart counts a dot in a key or header.
func (s *shapeScanner) addPart() {
	s.parts++
	if s.parts > maxKeyParts {
		s.failKeyParts()
	}
}

func (s *shapeScanner) failKeyParts() {
	s.fail("a key has more than %d parts, counting its [table] header and the inline tables around it; use shorter keys or fewer levels of tables", maxKeyParts)
}

func (s *shapeScanner) push(open byte) {
	if len(s.stack) >= maxNesting {
		s.fail("arrays and inline tables are nested more than %d deep; flatten the value", maxNesting)
		return
	}
	s.stack = append(s.stack, shapeFrame{open: open, base: s.parts})
}

func (s *shapeScanner) pop() {
	n := len(s.stack)
	if n == 0 {
		return // not valid TOML; the decoder says so
	}
	top := s.stack[n-1]
	s.stack = s.stack[:n-1]
	switch {
	case s.header && n == 1:
		s.table, s.key, s.header = s.parts, false, false // the header is complete
	case s.header:
		// the first ] of a [[array]] header
	default:
		s.key, s.parts = false, top.base // the value of top's key is complete
	}
}

// skipComment moves to the end of the line; the newline is read next.
func (s *shapeScanner) skipComment() {
	if j := strings.IndexByte(s.src[s.i:], '\n'); j >= 0 {
		s.i += j
	} else {
		s.i = len(s.src)
	}
}

// skipString moves past a string whose opening quote q was just read. A
// quoted key is always a one-line string; a value may be a multi-line one.
func (s *shapeScanner) skipString(q byte) {
	s.started = true
	if !s.key && strings.HasPrefix(s.src[s.i:], string([]byte{q, q})) {
		s.i += 2
		s.skipMultiLine(q)
		return
	}
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '\n':
			return // unterminated: the decoder reports it; the newline is read next
		case c == q:
			s.i++
			return
		case c == '\\' && q == '"' && s.i+1 < len(s.src) && s.src[s.i+1] != '\n':
			s.i += 2
		default:
			s.i++
		}
	}
}

// skipMultiLine moves past a multi-line string whose three opening quotes q
// were just read. It closes at the first run of three or more quotes (TOML
// lets one or two of them belong to the string), and in a basic string a
// backslash escapes the byte after it.
func (s *shapeScanner) skipMultiLine(q byte) {
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '\\' && q == '"':
			s.i += 2
		case c == q:
			run := s.i
			for run < len(s.src) && s.src[run] == q {
				run++
			}
			if run-s.i >= 3 {
				s.i = run
				return
			}
			s.i = run
		default:
			s.i++
		}
	}
	s.i = len(s.src)
}

func (s *shapeScanner) fail(format string, args ...any) {
	if s.err == nil {
		end := min(s.i, len(s.src))
		s.err = &shapeError{line: 1 + strings.Count(s.src[:end], "\n"), msg: fmt.Sprintf(format, args...)}
	}
}
