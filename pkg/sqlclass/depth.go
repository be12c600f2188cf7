package sqlclass

import (
	"errors"
	"fmt"
)

// MaxDepth bounds how deeply a statement may nest for Classify to parse it.
// PostgreSQL's parser builds a chain of operators ("1+1+…", "x::t::t…",
// "a JOIN b JOIN c …") as a tree one level deeper per operator, and the
// parse tree is then written out and read back recursively: past about
// 20,000 levels that overflows the C stack of the cgo build, which kills
// the process, and past about 3,000 the WebAssembly stack of the pure-Go
// build. Parsing past about 5,000 levels already failed cleanly, so 1,000
// refuses nothing that could be classified before, with room to spare.
const MaxDepth = 1000

// ErrTooDeep is wrapped by the error Classify returns for input that may
// nest deeper than MaxDepth.
var ErrTooDeep = errors.New("statement nests too deeply to classify")

// checkDepth refuses sql if its parse tree may be deeper than MaxDepth. It
// computes an upper bound from PostgreSQL's tokens, without parsing: each
// bracket, CASE and operator adds a level, and so does any other keyword or
// name, except where the parser builds a flat list instead of a chain: the
// items between commas, the operands of AND and OR (which it flattens),
// the arms of a CASE, and the SELECTs of a set operation. Set operations (UNION, INTERSECT, EXCEPT) and
// JOIN chain across those, so they count for the whole bracket. Input the
// parser would reject may be misjudged: it is refused either way.
//
// Each level takes at least two bytes, so text under 2*MaxDepth bytes is
// never scanned.
func checkDepth(sql string) error {
	if len(sql) <= 2*MaxDepth {
		return nil
	}
	if d := depthBound(sql); d > MaxDepth {
		return fmt.Errorf("%w: it may nest more than %d levels (operators chained without a comma, AND or OR between them, brackets, CASE, JOIN or UNION); split it or use fewer levels", ErrTooDeep, MaxDepth)
	}
	return nil
}

// depthFrame is one open bracket or CASE, or the statement itself.
type depthFrame struct {
	kind byte // '(', '[', 'C' (CASE) or 0 (the statement)
	// expr counts the levels of the expression being read, which a comma,
	// AND, OR, WHEN, THEN or ELSE ends; chain counts set operations and
	// JOINs, which only the frame's end ends. between counts the BETWEENs
	// waiting for their AND, which ends nothing: whatever came before it
	// in the frame (NOT NOT … x BETWEEN) is above the operand after it.
	expr, chain, between int
}

// depthBound returns an upper bound of the depth of sql's parse tree, or
// more than MaxDepth once it is sure that is exceeded.
func depthBound(sql string) int {
	stack := []depthFrame{{}}
	total, deepest := 0, 0
	add := func(n int, chain bool) {
		top := &stack[len(stack)-1]
		if chain {
			top.chain += n
		} else {
			top.expr += n
		}
		total += n
		deepest = max(deepest, total)
	}
	endExpr := func() {
		top := &stack[len(stack)-1]
		total -= top.expr
		top.expr = 0
	}
	push := func(kind byte) {
		stack = append(stack, depthFrame{kind: kind})
		total++
		deepest = max(deepest, total)
	}
	pop := func() {
		if len(stack) == 1 {
			return // unbalanced: the parser rejects it
		}
		top := stack[len(stack)-1]
		total -= top.expr + top.chain + 1
		stack = stack[:len(stack)-1]
	}
	lx := lexer{src: sql}
	for deepest <= MaxDepth {
		tok, word := lx.next()
		switch tok {
		case tokEOF:
			return deepest
		case '(', '[':
			push(tok)
		case ')', ']':
			pop()
		case ',':
			endExpr()
		case ';':
			if len(stack) == 1 {
				// The next statement: its tree is not below this one's.
				total, stack[0] = 0, depthFrame{}
			} else {
				endExpr()
			}
		case tokOp:
			add(1, false)
		case tokWord:
			switch {
			case equalFoldASCII(word, "between"):
				stack[len(stack)-1].between++
				add(1, false)
			case equalFoldASCII(word, "and") && stack[len(stack)-1].between > 0:
				stack[len(stack)-1].between--
				add(1, false)
			case equalFoldASCII(word, "and"), equalFoldASCII(word, "or"),
				equalFoldASCII(word, "when"), equalFoldASCII(word, "then"), equalFoldASCII(word, "else"):
				// The parser flattens AND and OR into one node (two levels
				// at most where they alternate) and lists CASE arms.
				endExpr()
				add(2, false)
			case equalFoldASCII(word, "select"):
				// A SELECT starts a statement of its own: what came before
				// it in the frame is a sibling in a set operation (counted
				// in chain) or one of a few statements above it.
				endExpr()
				add(2, false)
			case equalFoldASCII(word, "case"):
				push('C')
			case equalFoldASCII(word, "end") && stack[len(stack)-1].kind == 'C':
				pop()
			case equalFoldASCII(word, "union"), equalFoldASCII(word, "intersect"),
				equalFoldASCII(word, "except"), equalFoldASCII(word, "join"):
				add(1, true)
			default:
				add(1, false)
			}
		}
	}
	return deepest
}

// equalFoldASCII reports whether word, ASCII letters in any case, is lower.
// Not strings.EqualFold: PostgreSQL folds only ASCII letters in keywords,
// and Unicode folding would take the name "ſelect" for SELECT.
func equalFoldASCII(word, lower string) bool {
	if len(word) != len(lower) {
		return false
	}
	for i := range len(word) {
		c := word[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// Tokens of lexer.next besides single punctuation bytes.
const (
	tokEOF  = 0
	tokOp   = 1 // an operator, including :: and :
	tokWord = 2 // a keyword or name, unquoted
	tokLit  = 3 // a string, number, quoted name or parameter
)

// lexer splits SQL into tokens as PostgreSQL's scanner does, as far as
// telling code from literals and comments goes: a string, quoted name,
// dollar-quoted body or comment is skipped whole, so that nothing in it is
// taken for code, and nothing outside is skipped as if it were in one
// (which could hide levels). It assumes standard_conforming_strings, which
// the gateway keeps on: backslashes escape only in E'…' strings.
type lexer struct {
	src string
	pos int
}

func isIdentStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}

func isIdentCont(c byte) bool {
	return isIdentStart(c) || '0' <= c && c <= '9' || c == '$'
}

func isOpChar(c byte) bool {
	switch c {
	case '+', '-', '*', '/', '<', '>', '=', '~', '!', '@', '#', '%', '^', '&', '|', '`', '?':
		return true
	}
	return false
}

// next returns the next token, and for a word its text.
func (l *lexer) next() (tok byte, word string) {
	s := l.src
	for l.pos < len(s) {
		c := s[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.pos++
		case c == '-' && l.peek(1) == '-':
			l.skipLineComment()
		case c == '/' && l.peek(1) == '*':
			l.skipBlockComment()
		case c == '\'':
			l.pos++
			l.skipQuoted('\'', false)
			return tokLit, ""
		case c == '"':
			l.pos++
			l.skipQuoted('"', false)
			return tokLit, ""
		case c == '$' && '0' <= l.peek(1) && l.peek(1) <= '9':
			l.pos++
			for l.pos < len(s) && '0' <= s[l.pos] && s[l.pos] <= '9' {
				l.pos++
			}
			return tokLit, ""
		case c == '$':
			if l.skipDollarQuoted() {
				return tokLit, ""
			}
			l.pos++
			return tokOp, "" // not valid SQL; counted
		case '0' <= c && c <= '9' || c == '.' && '0' <= l.peek(1) && l.peek(1) <= '9':
			l.skipNumber()
			return tokLit, ""
		case isIdentStart(c):
			start := l.pos
			for l.pos < len(s) && isIdentCont(s[l.pos]) {
				l.pos++
			}
			w := s[start:l.pos]
			if (w == "e" || w == "E") && l.peek(0) == '\'' {
				l.pos++
				l.skipQuoted('\'', true)
				return tokLit, ""
			}
			// B'…', X'…', N'…' and U&'…' are standard strings: the
			// quote that follows is read as one next.
			return tokWord, w
		case c == ':':
			l.pos++
			if l.peek(0) == ':' || l.peek(0) == '=' {
				l.pos++
			}
			return tokOp, ""
		case isOpChar(c):
			// An operator runs to the first byte that is not an operator
			// byte, or to a comment start, which ends it.
			l.pos++
			for l.pos < len(s) && isOpChar(s[l.pos]) &&
				!(s[l.pos] == '-' && l.peek(1) == '-') && !(s[l.pos] == '/' && l.peek(1) == '*') {
				l.pos++
			}
			return tokOp, ""
		default:
			// Brackets, comma, semicolon, dot and anything else: one byte.
			l.pos++
			return c, ""
		}
	}
	return tokEOF, ""
}

// peek returns the byte i after the current one, or 0 past the end.
func (l *lexer) peek(i int) byte {
	if l.pos+i < len(l.src) {
		return l.src[l.pos+i]
	}
	return 0
}

func (l *lexer) skipLineComment() {
	for l.pos < len(l.src) && l.src[l.pos] != '\n' && l.src[l.pos] != '\r' {
		l.pos++
	}
}

// skipBlockComment skips a /* */ comment, which nests in PostgreSQL.
func (l *lexer) skipBlockComment() {
	depth := 0
	for l.pos < len(l.src) {
		switch {
		case l.src[l.pos] == '/' && l.peek(1) == '*':
			depth++
			l.pos += 2
		case l.src[l.pos] == '*' && l.peek(1) == '/':
			depth--
			l.pos += 2
			if depth == 0 {
				return
			}
		default:
			l.pos++
		}
	}
}

// skipQuoted skips to the end of a string or quoted name opened just
// before the current byte: a doubled quote is one quote, and with escapes
// (E'…') so is a backslash followed by any byte.
func (l *lexer) skipQuoted(q byte, escapes bool) {
	s := l.src
	for l.pos < len(s) {
		c := s[l.pos]
		switch {
		case escapes && c == '\\':
			l.pos += 2
		case c == q && l.peek(1) == q:
			l.pos += 2
		case c == q:
			l.pos++
			return
		default:
			l.pos++
		}
	}
	l.pos = len(s)
}

// skipDollarQuoted skips a $tag$…$tag$ body starting at the current byte,
// and reports false, skipping nothing, if no dollar quote starts there.
func (l *lexer) skipDollarQuoted() bool {
	s := l.src
	end := l.pos + 1
	if end < len(s) && isIdentStart(s[end]) {
		for end < len(s) && isIdentCont(s[end]) && s[end] != '$' {
			end++
		}
	}
	if end >= len(s) || s[end] != '$' {
		return false
	}
	tag := s[l.pos : end+1]
	body := end + 1
	for i := body; i+len(tag) <= len(s); i++ {
		if s[i] == '$' && s[i:i+len(tag)] == tag {
			l.pos = i + len(tag)
			return true
		}
	}
	l.pos = len(s) // unterminated: the parser rejects it
	return true
}

// skipNumber skips the digits, dots and digit separators of a numeric
// literal, and an exponent with its sign when digits follow. Anything else
// (a hexadecimal prefix's letters, trailing junk) is read as a word next:
// counted, never skipped.
func (l *lexer) skipNumber() {
	isDigit := func(c byte) bool { return '0' <= c && c <= '9' }
	s := l.src
	for l.pos < len(s) && (isDigit(s[l.pos]) || s[l.pos] == '.' || s[l.pos] == '_') {
		l.pos++
	}
	if c := l.peek(0); c == 'e' || c == 'E' {
		switch {
		case isDigit(l.peek(1)):
			l.pos++
		case (l.peek(1) == '+' || l.peek(1) == '-') && isDigit(l.peek(2)):
			l.pos += 2
		default:
			return
		}
		for l.pos < len(s) && (isDigit(s[l.pos]) || s[l.pos] == '_') {
			l.pos++
		}
	}
}
