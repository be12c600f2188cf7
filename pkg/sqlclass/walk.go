package sqlclass

import (
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// walker visits every message of a statement's parse tree. It walks the
// protobuf tree generically, so no node type can be skipped by a hand-written
// traversal that forgot a field: every FuncCall, RangeVar and nested
// statement is seen wherever it sits.
type walker struct {
	st *Statement
	// written holds the relations that are the target of a change, marked
	// by their parent before the walk reaches them.
	written map[*pg_query.RangeVar]bool
	// updDel counts UPDATE and DELETE statements, noWhere those without WHERE.
	updDel, noWhere int
}

// scope is what a node's ancestors tell about it.
type scope struct {
	// inCTE: inside a WITH query.
	inCTE bool
	// planOnly: inside EXPLAIN without ANALYZE, which plans the statement but
	// does not execute it, so statement types under it do not raise the level.
	planOnly bool
}

func (w *walker) walkNode(n *pg_query.Node) {
	if n == nil {
		return
	}
	w.walk(n.ProtoReflect(), scope{})
}

func (w *walker) walk(m protoreflect.Message, sc scope) {
	sc = w.visit(m.Interface(), sc)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := range l.Len() {
				w.walk(l.Get(i).Message(), sc)
			}
			return true
		}
		w.walk(v.Message(), sc)
		return true
	})
}

// visit records what one message says about the statement and returns the
// scope for its children.
func (w *walker) visit(msg protoreflect.ProtoMessage, sc scope) scope {
	st := w.st
	switch x := msg.(type) {
	case *pg_query.Node:
		// Every statement node, top-level or nested (EXPLAIN ANALYZE's
		// statement, a PREPARE's body, a COPY query, a WITH query), raises
		// the level to what its type needs.
		if isStatement(x) && !sc.planOnly {
			addUnique(&st.Tags, commandTag(x))
			l, reason := statementLevel(x)
			if sc.inCTE {
				reason = "in a WITH query: " + reason
			}
			st.raise(l, reason)
		}
	case *pg_query.SelectStmt:
		// SelectStmt also appears unwrapped (UNION arms), so its own clauses
		// are checked here rather than in statementLevel.
		if len(x.GetLockingClause()) > 0 && !sc.planOnly {
			st.raise(LevelWrite, "SELECT … FOR UPDATE/SHARE locks rows")
		}
		if x.GetIntoClause() != nil && !sc.planOnly {
			st.raise(LevelAdmin, "SELECT INTO creates a table")
		}
	case *pg_query.InsertStmt:
		w.dml(x.GetRelation(), sc)
	case *pg_query.UpdateStmt:
		w.dml(x.GetRelation(), sc)
		w.countWhere(x.GetWhereClause())
	case *pg_query.DeleteStmt:
		w.dml(x.GetRelation(), sc)
		w.countWhere(x.GetWhereClause())
	case *pg_query.MergeStmt:
		w.dml(x.GetRelation(), sc)
	case *pg_query.CommonTableExpr:
		sc.inCTE = true
	case *pg_query.ExplainStmt:
		if explainAnalyze(x) {
			st.ExplainAnalyze = true
		} else {
			sc.planOnly = true
		}
	case *pg_query.ExecuteStmt:
		st.Prepared = x.GetName()
		st.Opaque = true
	case *pg_query.PrepareStmt:
		st.Prepared = x.GetName()
	case *pg_query.DoStmt:
		st.DoBlock, st.Opaque = true, true
	case *pg_query.CallStmt:
		st.Call, st.Opaque = true, true
	case *pg_query.CopyStmt:
		if x.GetIsFrom() {
			w.markWritten(x.GetRelation())
		} else if x.GetFilename() == "" && !x.GetIsProgram() {
			st.CopyToStdout = true
		}
	case *pg_query.FuncCall:
		name := qualified(x.GetFuncname())
		addUnique(&st.Functions, name)
		// Functions raise the level even under a plain EXPLAIN: listing
		// them costs nothing, and erring high is the closed side.
		if l, reason, ok := functionLevel(name); ok {
			st.raise(l, reason)
		}
	case *pg_query.RangeVar:
		if w.written[x] {
			addUnique(&st.TablesWritten, relName(x))
		} else {
			addUnique(&st.TablesRead, relName(x))
		}
	case *pg_query.IntoClause:
		w.markWritten(x.GetRel())
	default:
		w.ddlTargets(msg)
	}
	return sc
}

// dml records an INSERT, UPDATE, DELETE or MERGE found anywhere in the tree.
func (w *walker) dml(target *pg_query.RangeVar, sc scope) {
	// The level itself comes from statementLevel on the enclosing Node.
	w.markWritten(target)
	if sc.inCTE {
		w.st.DataModifyingCTE = true
	}
}

func (w *walker) countWhere(where *pg_query.Node) {
	w.updDel++
	if where == nil {
		w.noWhere++
	}
}

func (w *walker) markWritten(rv *pg_query.RangeVar) {
	if rv != nil {
		w.written[rv] = true
	}
}

// ddlTargets marks the relations a DDL statement changes. Their level is
// already admin; this only makes TablesWritten name them.
func (w *walker) ddlTargets(msg protoreflect.ProtoMessage) {
	switch x := msg.(type) {
	case *pg_query.CreateStmt:
		w.markWritten(x.GetRelation())
	case *pg_query.AlterTableStmt:
		w.markWritten(x.GetRelation())
	case *pg_query.IndexStmt:
		w.markWritten(x.GetRelation())
	case *pg_query.ViewStmt:
		w.markWritten(x.GetView())
	case *pg_query.RefreshMatViewStmt:
		w.markWritten(x.GetRelation())
	case *pg_query.CreateTrigStmt:
		w.markWritten(x.GetRelation())
	case *pg_query.RenameStmt:
		w.markWritten(x.GetRelation())
	case *pg_query.TruncateStmt:
		for _, n := range x.GetRelations() {
			w.markWritten(n.GetRangeVar())
		}
	case *pg_query.LockStmt:
		for _, n := range x.GetRelations() {
			w.markWritten(n.GetRangeVar())
		}
	case *pg_query.DropStmt:
		if droppedRelation(x.GetRemoveType()) {
			for _, obj := range x.GetObjects() {
				addUnique(&w.st.TablesWritten, qualified(obj.GetList().GetItems()))
			}
		}
	}
}

func droppedRelation(t pg_query.ObjectType) bool {
	switch t {
	case pg_query.ObjectType_OBJECT_TABLE, pg_query.ObjectType_OBJECT_VIEW,
		pg_query.ObjectType_OBJECT_MATVIEW, pg_query.ObjectType_OBJECT_FOREIGN_TABLE,
		pg_query.ObjectType_OBJECT_SEQUENCE, pg_query.ObjectType_OBJECT_INDEX:
		return true
	}
	return false
}

// explainAnalyze reports whether EXPLAIN's options turn ANALYZE on. Only the
// spellings PostgreSQL reads as false (false, off, 0) count as off; anything
// else counts as on, the closed side, since ANALYZE executes the statement.
func explainAnalyze(x *pg_query.ExplainStmt) bool {
	on := false
	for _, o := range x.GetOptions() {
		d := o.GetDefElem()
		if d == nil || !strings.EqualFold(d.GetDefname(), "analyze") {
			continue
		}
		on = true
		switch a := d.GetArg(); {
		case a == nil:
		case a.GetString_() != nil:
			s := a.GetString_().GetSval()
			if strings.EqualFold(s, "false") || strings.EqualFold(s, "off") {
				on = false
			}
		case a.GetInteger() != nil:
			if a.GetInteger().GetIval() == 0 {
				on = false
			}
		case a.GetBoolean() != nil:
			on = a.GetBoolean().GetBoolval()
		}
	}
	return on
}

// qualified joins a parser name list (String nodes) with dots: a.b.c.
func qualified(parts []*pg_query.Node) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		if s := p.GetString_(); s != nil {
			b.WriteString(s.GetSval())
		} else {
			b.WriteByte('*') // e.g. the * of a qualified star; never a function name
		}
	}
	return b.String()
}

func relName(rv *pg_query.RangeVar) string {
	parts := make([]string, 0, 3)
	for _, p := range []string{rv.GetCatalogname(), rv.GetSchemaname(), rv.GetRelname()} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ".")
}

func addUnique(list *[]string, s string) {
	if !slices.Contains(*list, s) {
		*list = append(*list, s)
	}
}
