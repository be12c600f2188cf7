package sqlclass

import (
	"errors"
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// MaxLen is the largest input Classify accepts, in bytes. Larger input is
// refused rather than parsed, so one client cannot make the gateway spend
// unbounded CPU and memory in the parser.
const MaxLen = 1 << 20

// ErrTooLarge is wrapped by the error Classify returns for input over MaxLen.
var ErrTooLarge = errors.New("SQL text too large to classify")

// Statement is the classification of one statement of a query string.
type Statement struct {
	// Text is this statement's own text (from the parser's statement
	// location and length), without surrounding white space.
	Text string
	// Tag is the PostgreSQL command tag: "SELECT", "INSERT", "CREATE TABLE",
	// "DROP TABLE", "GRANT", "SET", "EXPLAIN", "PREPARE", "EXECUTE", …
	// It is never empty for a classified statement.
	Tag string
	// Level is the access the statement needs; always valid.
	Level Level
	// TablesRead and TablesWritten name the relations the statement reads
	// and changes (rows or definition), qualified as written in the
	// statement. Names of WITH queries are listed as read too: the lists
	// err on the side of naming more.
	TablesRead, TablesWritten []string
	// Functions names every function called anywhere in the statement,
	// qualified as written, in order of first appearance. A field name in
	// attribute notation ((x).nextval, alias.f, which PostgreSQL may run as
	// nextval(x)) is listed only when it is in the function table.
	Functions []string
	// HasWhere reports whether the statement contains an UPDATE or DELETE
	// and every UPDATE and DELETE in it has a WHERE clause. A rule that
	// holds unbounded deletes checks !HasWhere.
	HasWhere bool
	// DataModifyingCTE is set when a WITH query inserts, updates, deletes
	// or merges (WITH d AS (DELETE …) SELECT …).
	DataModifyingCTE bool
	// ExplainAnalyze is set for EXPLAIN ANALYZE, which executes its statement.
	ExplainAnalyze bool
	// DoBlock is set for DO: an anonymous code block, opaque to the parser.
	DoBlock bool
	// Tags are the command tags of every statement that runs when this one
	// does: Tag itself, then nested ones (a DELETE in a WITH query, the
	// statement under EXPLAIN ANALYZE, a PREPARE's body), and the actions
	// a statement takes on rows in other forms: DELETE, UPDATE or INSERT
	// for a MERGE's WHEN clauses, UPDATE for INSERT … ON CONFLICT DO
	// UPDATE, DROP COLUMN for ALTER TABLE … DROP COLUMN. Rules that match
	// statement classes must look at all of them.
	Tags []string
	// Opaque is set when the statement runs SQL the parser cannot see: a DO
	// block, a CALL of a procedure, an EXECUTE of a prepared statement, or a
	// call of a function or operator that is not a PostgreSQL built-in (not
	// in pg_catalog, or qualified with another schema). Its Level is still
	// what the visible parts need. Rules must treat it as possibly any
	// statement (fail closed). A user's function called in attribute
	// notation (alias.f) looks like a column and is not detected.
	Opaque bool
	// Call is set for CALL of a procedure.
	Call bool
	// CopyToStdout is set for COPY … TO STDOUT: the rows go to the client
	// as COPY data, which masking must cover.
	CopyToStdout bool
	// CopyFromStdin is set for COPY … FROM STDIN: the client sends the
	// rows as COPY data after the statement.
	CopyFromStdin bool
	// Prepared is the prepared-statement name of a PREPARE or an EXECUTE.
	// An EXECUTE is LevelAdmin here because its statement is not visible in
	// its text; a caller that tracks PREPARE can resolve it by this name.
	Prepared string
	// Cursor is the name of the cursor a DECLARE opens. Cursors share the
	// namespace of the protocol's portals. CursorHold is set for WITH
	// HOLD, whose cursor outlives its transaction.
	Cursor     string
	CursorHold bool
	// Fetched is the name of the cursor or portal a FETCH or MOVE reads:
	// reading one runs its statement if it has not run yet, and a portal
	// the protocol's Bind made holds a statement this text does not show.
	Fetched string
	// Reason says why the statement has its level, for messages.
	Reason string
	// Forbidden, when not empty, says why no grant may run the statement:
	// it would make PostgreSQL read the session's later statements
	// differently from this package (standard_conforming_strings off, a
	// client-only client_encoding), so that the gateway's checks of them,
	// already pipelined behind it, would not hold.
	Forbidden string
}

// Result is the classification of a query string.
type Result struct {
	// Statements holds one entry per statement, in order. An empty query
	// string (legal in PostgreSQL) has none.
	Statements []Statement
	// Level is the highest level of the statements, LevelRead if there are none.
	Level Level
}

// Classify parses sql with the PostgreSQL parser and classifies each
// statement in it. An error means the input must be refused (fail closed): it
// cannot be parsed, contains a NUL byte, or is longer than MaxLen.
func Classify(sql string) (*Result, error) {
	if len(sql) > MaxLen {
		return nil, fmt.Errorf("%w: %d bytes is over the %d-byte limit for one request; send its statements in smaller requests (gatectl exec -f sends a whole file as one)", ErrTooLarge, len(sql), MaxLen)
	}
	// The parser takes a C string and would stop at a NUL, classifying a
	// prefix of what the caller would forward: refuse instead (fail closed).
	if strings.IndexByte(sql, 0) >= 0 {
		return nil, errors.New("statement contains a NUL byte and cannot be classified; remove it")
	}
	// Fail closed, and before the parser: a tree too deep for it to write
	// out would crash the process.
	if err := checkDepth(sql); err != nil {
		return nil, err
	}
	tree, err := parse(sql)
	if err != nil {
		// Fail closed: what PostgreSQL's own grammar rejects is refused.
		return nil, fmt.Errorf("%w; check the statement's syntax", err)
	}
	res := &Result{Level: LevelRead, Statements: make([]Statement, 0, len(tree.GetStmts()))}
	for _, raw := range tree.GetStmts() {
		st := classifyStmt(raw.GetStmt())
		st.Text = stmtText(sql, raw)
		res.Statements = append(res.Statements, st)
		res.Level = max(res.Level, st.Level)
	}
	return res, nil
}

// stmtText cuts a statement's text out of the query string. A length of zero
// means "to the end of the string", as in PostgreSQL.
func stmtText(sql string, raw *pg_query.RawStmt) string {
	start := min(max(int(raw.GetStmtLocation()), 0), len(sql))
	end := len(sql)
	if n := int(raw.GetStmtLen()); n > 0 && start+n < end {
		end = start + n
	}
	return strings.TrimSpace(sql[start:end])
}

// classifyStmt classifies one top-level statement: its own type gives the
// tag, and a walk of its whole parse tree gives the level, tables and
// functions.
func classifyStmt(n *pg_query.Node) Statement {
	st := Statement{Tag: commandTag(n), Level: LevelRead}
	w := walker{st: &st, written: map[*pg_query.RangeVar]bool{}}
	w.walkNode(n)
	for rv := range w.written {
		if rv.GetRelname() == "pg_settings" && (rv.GetSchemaname() == "" || rv.GetSchemaname() == "pg_catalog") && st.Forbidden == "" {
			// Its update rule calls set_config: an UPDATE of it is a SET of
			// whatever parameter a row names, lexer settings included.
			st.Forbidden = "writing pg_settings changes settings, which could change how PostgreSQL reads later statements; use SET, which the gateway checks"
		}
	}
	st.HasWhere = w.updDel > 0 && w.noWhere == 0
	if st.Reason == "" {
		st.Reason = st.Tag + " only reads"
	}
	return st
}

// raise lifts the statement's level to l, recording why, if l is higher.
// The first reason for the highest level is kept.
func (st *Statement) raise(l Level, reason string) {
	if l > st.Level || st.Reason == "" && l == st.Level {
		st.Level, st.Reason = l, reason
	}
}
