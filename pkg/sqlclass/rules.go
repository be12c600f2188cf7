package sqlclass

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// statementLevel is the level a statement's own type needs, before anything
// nested in it is considered (the walk handles that). It is the one table of
// statement rules; anything it does not list is LevelAdmin (fail closed).
func statementLevel(n *pg_query.Node) (Level, string) {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_SelectStmt:
		// Covers SELECT, VALUES and TABLE. FOR UPDATE/SHARE and INTO are
		// raised by the walk, which also sees unwrapped UNION arms.
		return LevelRead, "SELECT only reads"
	case *pg_query.Node_InsertStmt:
		return LevelWrite, "INSERT changes data"
	case *pg_query.Node_UpdateStmt:
		return LevelWrite, "UPDATE changes data"
	case *pg_query.Node_DeleteStmt:
		return LevelWrite, "DELETE changes data"
	case *pg_query.Node_MergeStmt:
		return LevelWrite, "MERGE changes data"
	case *pg_query.Node_NotifyStmt:
		// Other sessions act on notifications, so sending one is a write.
		return LevelWrite, "NOTIFY signals other sessions"
	case *pg_query.Node_CopyStmt:
		return copyLevel(x.CopyStmt)
	case *pg_query.Node_ExplainStmt:
		// EXPLAIN's statement is walked with planOnly unless ANALYZE is on,
		// in which case the statement's own level is raised by the walk.
		if explainAnalyze(x.ExplainStmt) {
			return LevelRead, "EXPLAIN ANALYZE runs its statement, which only reads"
		}
		return LevelRead, "EXPLAIN without ANALYZE only plans its statement"
	case *pg_query.Node_PrepareStmt:
		// The body is walked too, so PREPARE p AS DELETE … is a write: the
		// proxy must not let a read grant store what it would refuse to run.
		return LevelRead, "PREPARE of a statement that only reads"
	case *pg_query.Node_ExecuteStmt:
		// Fail closed: the statement run is not visible in this text. The
		// caller may resolve Statement.Prepared against its PREPARE tracking.
		return LevelAdmin, fmt.Sprintf("EXECUTE runs prepared statement %q, whose text is not visible here", x.ExecuteStmt.GetName())
	case *pg_query.Node_DeclareCursorStmt:
		// PostgreSQL only allows a SELECT here; the walk raises FOR UPDATE.
		return LevelRead, "DECLARE of a cursor over a query that only reads"
	case *pg_query.Node_FetchStmt, *pg_query.Node_ClosePortalStmt,
		*pg_query.Node_ListenStmt, *pg_query.Node_UnlistenStmt,
		*pg_query.Node_VariableShowStmt, *pg_query.Node_DeallocateStmt:
		return LevelRead, commandTag(n) + " only reads or changes session state"
	case *pg_query.Node_TransactionStmt:
		return transactionLevel(x.TransactionStmt)
	case *pg_query.Node_VariableSetStmt:
		return setLevel(x.VariableSetStmt)
	case *pg_query.Node_DiscardStmt:
		// DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT, which
		// resets the current role just like RESET ROLE (admin below). The
		// other forms only drop caches, temporary tables and sequence state.
		if x.DiscardStmt.GetTarget() == pg_query.DiscardMode_DISCARD_ALL {
			return LevelAdmin, "DISCARD ALL resets the session's role and authorization"
		}
		return LevelRead, commandTag(n) + " only drops session state"
	case *pg_query.Node_DoStmt:
		return LevelAdmin, "DO runs an anonymous code block, which is opaque to the parser and may run dynamic SQL"
	case *pg_query.Node_CallStmt:
		return LevelAdmin, "CALL runs a procedure, which may change anything and control transactions"
	case *pg_query.Node_AlterSystemStmt:
		return LevelAdmin, "ALTER SYSTEM changes the server configuration"
	case *pg_query.Node_LoadStmt:
		return LevelAdmin, "LOAD loads a shared library into the server"
	}
	return LevelAdmin, commandTag(n) + " needs admin: DDL, DCL and statements not known to only read or write data"
}

// copyLevel classifies COPY by direction and endpoint.
func copyLevel(x *pg_query.CopyStmt) (Level, string) {
	switch {
	case x.GetIsProgram():
		return LevelAdmin, "COPY … PROGRAM runs a shell command on the database server"
	case x.GetFilename() != "":
		// The parser leaves Filename empty for STDIN and STDOUT. A quoted
		// empty file name ('') looks the same in the tree; PostgreSQL refuses
		// it (no such file, or a relative path for COPY TO), so it is safe to
		// treat like STDIN/STDOUT below.
		return LevelAdmin, "COPY to or from a server file reads or writes the database server's file system"
	case x.GetIsFrom():
		return LevelWrite, "COPY FROM STDIN loads data"
	}
	return LevelRead, "COPY TO STDOUT only reads"
}

// transactionLevel: transaction control is read (it changes nothing by
// itself), except two-phase commit, whose prepared transactions outlive the
// session and hold locks until an administrator resolves them.
func transactionLevel(x *pg_query.TransactionStmt) (Level, string) {
	switch x.GetKind() {
	case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN,
		pg_query.TransactionStmtKind_TRANS_STMT_START:
		if len(x.GetOptions()) > 0 {
			// BEGIN READ WRITE lifts a read-only default (a role's
			// default_transaction_read_only) as SET TRANSACTION does.
			return transactionSettingsLevel("transaction", x.GetOptions())
		}
		return LevelRead, "transaction control changes no data by itself"
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT,
		pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK,
		pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT,
		pg_query.TransactionStmtKind_TRANS_STMT_RELEASE,
		pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		return LevelRead, "transaction control changes no data by itself"
	}
	return LevelAdmin, "two-phase commit leaves a prepared transaction behind the session"
}

// isStatement reports whether n holds a statement (as opposed to an
// expression, a name or a clause).
func isStatement(n *pg_query.Node) bool {
	return strings.HasSuffix(nodeKind(n), "_stmt")
}

// nodeKind is the name of the node type n holds, as the protobuf oneof field
// name ("select_stmt", "func_call", …), or "" for an empty node.
func nodeKind(n *pg_query.Node) string {
	m := n.ProtoReflect()
	fd := m.WhichOneof(nodeOneof)
	if fd == nil {
		return ""
	}
	return string(fd.Name())
}

var nodeOneof = (&pg_query.Node{}).ProtoReflect().Descriptor().Oneofs().ByName("node")
