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
	case *pg_query.VariableSetStmt:
		// Here rather than in statementLevel: the same node sets a role's,
		// a database's or the system's default (ALTER … SET).
		if why := settingForbidden(x); why != "" && st.Forbidden == "" {
			st.Forbidden = why
		}
	case *pg_query.MergeWhenClause:
		// A MERGE deletes, updates or inserts by its WHEN clauses: rules
		// written for DELETE or UPDATE must see those it does.
		if !sc.planOnly {
			switch x.GetCommandType() {
			case pg_query.CmdType_CMD_DELETE:
				addUnique(&st.Tags, "DELETE")
			case pg_query.CmdType_CMD_UPDATE:
				addUnique(&st.Tags, "UPDATE")
			case pg_query.CmdType_CMD_INSERT:
				addUnique(&st.Tags, "INSERT")
			}
		}
	case *pg_query.AlterTableCmd:
		// ALTER TABLE … DROP COLUMN destroys data as a DROP does: rules on
		// DROP must see it.
		if !sc.planOnly && x.GetSubtype() == pg_query.AlterTableType_AT_DropColumn {
			addUnique(&st.Tags, "DROP COLUMN")
		}
	case *pg_query.OnConflictClause:
		// INSERT … ON CONFLICT DO UPDATE updates the rows it conflicts with.
		if !sc.planOnly && x.GetAction() == pg_query.OnConflictAction_ONCONFLICT_UPDATE {
			addUnique(&st.Tags, "UPDATE")
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
	case *pg_query.CreateFunctionStmt:
		if !sc.planOnly {
			functionBody(st, x)
		}
	case *pg_query.FetchStmt:
		st.Fetched = x.GetPortalname()
	case *pg_query.DeclareCursorStmt:
		if !sc.planOnly && st.Cursor == "" {
			st.Cursor = x.GetPortalname()
			st.CursorHold = x.GetOptions()&cursorOptHold != 0
		}
	case *pg_query.CopyStmt:
		stdio := x.GetFilename() == "" && !x.GetIsProgram()
		if x.GetIsFrom() {
			w.markWritten(x.GetRelation())
			st.CopyFromStdin = stdio
		} else {
			st.CopyToStdout = stdio
		}
	case *pg_query.FuncCall:
		// Functions raise the level even under a plain EXPLAIN: listing
		// them costs nothing, the planner may run immutable ones, and
		// erring high is the closed side.
		w.funcCall(x)
	case *pg_query.ColumnRef:
		// alias.f may be the call f(alias) in attribute notation; a
		// single name is always a column or a whole row.
		if f := x.GetFields(); len(f) > 1 {
			w.attribute(f[len(f)-1])
		}
	case *pg_query.A_Indirection:
		// (expr).f.g is g(f(expr)) when expr has no field f.
		for _, n := range x.GetIndirection() {
			w.attribute(n)
		}
	case *pg_query.A_Expr:
		if !betweenKind(x.GetKind()) { // BETWEEN's name is the keyword
			w.operator(x.GetName())
		}
	case *pg_query.SubLink:
		w.operator(x.GetOperName()) // x = ANY (SELECT …)
	case *pg_query.SortBy:
		w.operator(x.GetUseOp()) // ORDER BY x USING op
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

// funcCall records a function call: a function that is not a pg_catalog
// built-in makes the statement Opaque, and the function table raises its
// level.
func (w *walker) funcCall(x *pg_query.FuncCall) {
	parts := nameParts(x.GetFuncname())
	name := strings.Join(parts, ".")
	addUnique(&w.st.Functions, name)
	builtin := builtinName(parts, builtinFunctions)
	if !builtin {
		// Fail closed: a user's function may run any SQL, so every rule
		// on the target must cover the statement.
		w.st.Opaque = true
	}
	if builtin && parts[len(parts)-1] == "set_config" {
		w.st.raise(setConfigLevel(x, name))
		if why := setConfigForbidden(x, name); why != "" && w.st.Forbidden == "" {
			w.st.Forbidden = why
		}
		return
	}
	if l, reason, ok := functionLevel(name); ok {
		w.st.raise(l, reason)
	}
}

// attribute checks a field name in attribute notation (alias.f, (expr).f)
// against the function table, and lists it as a function only if it matched.
// A user's function called this way looks like a column to the parser and
// is not made Opaque (a known limitation).
func (w *walker) attribute(n *pg_query.Node) {
	s := n.GetString_()
	if s == nil {
		return
	}
	if l, reason, ok := attributeLevel(s.GetSval()); ok {
		addUnique(&w.st.Functions, s.GetSval())
		w.st.raise(l, reason)
	}
}

// operator makes the statement Opaque when an operator name (absent: nil) is
// not a pg_catalog built-in, such as OPERATOR(public.+) or a user's ===.
func (w *walker) operator(name []*pg_query.Node) {
	if len(name) == 0 {
		return
	}
	if !builtinName(nameParts(name), builtinOperators) {
		// Fail closed: a user's operator runs a user's function.
		w.st.Opaque = true
	}
}

func betweenKind(k pg_query.A_Expr_Kind) bool {
	switch k {
	case pg_query.A_Expr_Kind_AEXPR_BETWEEN, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN,
		pg_query.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
		return true
	}
	return false
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
	return strings.Join(nameParts(parts), ".")
}

// nameParts returns the strings of a parser name list; a part that is not a
// String (the * of a qualified star) is "*", never a function name.
func nameParts(parts []*pg_query.Node) []string {
	names := make([]string, len(parts))
	for i, p := range parts {
		names[i] = "*"
		if s := p.GetString_(); s != nil {
			names[i] = s.GetSval()
		}
	}
	return names
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

// functionBody takes what a function or procedure being created runs into
// st: a call of it may later look like a column (attribute notation, o.f
// for f(o)), so the rules must see its body when it is created. The
// statements of a LANGUAGE sql body given as a string are classified and
// their tags added (a BEGIN ATOMIC body is part of the tree and walked
// anyway); a body in any other language is opaque (fail closed).
func functionBody(st *Statement, x *pg_query.CreateFunctionStmt) {
	if x.GetSqlBody() != nil {
		return
	}
	var language string
	var body []string
	for _, o := range x.GetOptions() {
		d := o.GetDefElem()
		switch d.GetDefname() {
		case "language":
			language = asciiLower(d.GetArg().GetString_().GetSval())
		case "as":
			for _, item := range d.GetArg().GetList().GetItems() {
				body = append(body, item.GetString_().GetSval())
			}
		}
	}
	if language != "sql" || len(body) != 1 {
		st.Opaque = true
		return
	}
	res, err := Classify(body[0])
	if err != nil {
		st.Opaque = true
		return
	}
	for _, b := range res.Statements {
		for _, t := range b.Tags {
			addUnique(&st.Tags, t)
		}
		st.Opaque = st.Opaque || b.Opaque
		if st.Forbidden == "" && b.Forbidden != "" {
			st.Forbidden = "in the function's body: " + b.Forbidden
		}
	}
}

// cursorOptHold is PostgreSQL's CURSOR_OPT_HOLD, the WITH HOLD bit of a
// DECLARE's options.
const cursorOptHold = 0x0020
