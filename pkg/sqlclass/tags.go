package sqlclass

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// commandTag returns the PostgreSQL command tag of a statement, following
// CreateCommandTag in PostgreSQL's src/backend/tcop/utility.c. Node types it
// does not list get a tag spelled from the type ("create_publication_stmt" →
// "CREATE PUBLICATION"), so the tag is never empty.
func commandTag(n *pg_query.Node) string {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_SelectStmt:
		if x.SelectStmt.GetIntoClause() != nil {
			return "SELECT INTO"
		}
		return "SELECT"
	case *pg_query.Node_TransactionStmt:
		return transactionTags[x.TransactionStmt.GetKind()]
	case *pg_query.Node_VariableSetStmt:
		switch x.VariableSetStmt.GetKind() {
		case pg_query.VariableSetKind_VAR_RESET, pg_query.VariableSetKind_VAR_RESET_ALL:
			return "RESET"
		}
		return "SET"
	case *pg_query.Node_DiscardStmt:
		return "DISCARD " + strings.TrimPrefix(x.DiscardStmt.GetTarget().String(), "DISCARD_")
	case *pg_query.Node_FetchStmt:
		if x.FetchStmt.GetIsmove() {
			return "MOVE"
		}
		return "FETCH"
	case *pg_query.Node_ClosePortalStmt:
		if x.ClosePortalStmt.GetPortalname() == "" {
			return "CLOSE CURSOR ALL"
		}
		return "CLOSE CURSOR"
	case *pg_query.Node_DeallocateStmt:
		if x.DeallocateStmt.GetIsall() {
			return "DEALLOCATE ALL"
		}
		return "DEALLOCATE"
	case *pg_query.Node_GrantStmt:
		return grantTag(x.GrantStmt.GetIsGrant(), "")
	case *pg_query.Node_GrantRoleStmt:
		return grantTag(x.GrantRoleStmt.GetIsGrant(), " ROLE")
	case *pg_query.Node_VacuumStmt:
		if x.VacuumStmt.GetIsVacuumcmd() {
			return "VACUUM"
		}
		return "ANALYZE"
	case *pg_query.Node_CreateFunctionStmt:
		if x.CreateFunctionStmt.GetIsProcedure() {
			return "CREATE PROCEDURE"
		}
		return "CREATE FUNCTION"
	case *pg_query.Node_CreateTableAsStmt:
		switch {
		case x.CreateTableAsStmt.GetIsSelectInto():
			return "SELECT INTO"
		case x.CreateTableAsStmt.GetObjtype() == pg_query.ObjectType_OBJECT_MATVIEW:
			return "CREATE MATERIALIZED VIEW"
		}
		return "CREATE TABLE AS"
	case *pg_query.Node_DropStmt:
		return "DROP " + objectName(x.DropStmt.GetRemoveType())
	case *pg_query.Node_DefineStmt:
		return "CREATE " + objectName(x.DefineStmt.GetKind())
	case *pg_query.Node_AlterTableStmt:
		return "ALTER " + objectName(x.AlterTableStmt.GetObjtype())
	case *pg_query.Node_AlterTableMoveAllStmt:
		return "ALTER " + objectName(x.AlterTableMoveAllStmt.GetObjtype())
	case *pg_query.Node_AlterFunctionStmt:
		return "ALTER " + objectName(x.AlterFunctionStmt.GetObjtype())
	case *pg_query.Node_RenameStmt:
		return "ALTER " + objectName(x.RenameStmt.GetRenameType())
	case *pg_query.Node_AlterObjectSchemaStmt:
		return "ALTER " + objectName(x.AlterObjectSchemaStmt.GetObjectType())
	case *pg_query.Node_AlterOwnerStmt:
		return "ALTER " + objectName(x.AlterOwnerStmt.GetObjectType())
	case *pg_query.Node_AlterObjectDependsStmt:
		return "ALTER " + objectName(x.AlterObjectDependsStmt.GetObjectType())
	}
	kind := nodeKind(n)
	if tag, ok := fixedTags[kind]; ok {
		return tag
	}
	if kind == "" {
		return "UNKNOWN"
	}
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSuffix(kind, "_stmt"), "_", " "))
}

func grantTag(isGrant bool, suffix string) string {
	if isGrant {
		return "GRANT" + suffix
	}
	return "REVOKE" + suffix
}

var transactionTags = map[pg_query.TransactionStmtKind]string{
	pg_query.TransactionStmtKind_TRANSACTION_STMT_KIND_UNDEFINED: "TRANSACTION",
	pg_query.TransactionStmtKind_TRANS_STMT_BEGIN:                "BEGIN",
	pg_query.TransactionStmtKind_TRANS_STMT_START:                "START TRANSACTION",
	pg_query.TransactionStmtKind_TRANS_STMT_COMMIT:               "COMMIT",
	pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:             "ROLLBACK",
	pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT:            "SAVEPOINT",
	pg_query.TransactionStmtKind_TRANS_STMT_RELEASE:              "RELEASE",
	pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:          "ROLLBACK",
	pg_query.TransactionStmtKind_TRANS_STMT_PREPARE:              "PREPARE TRANSACTION",
	pg_query.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED:      "COMMIT PREPARED",
	pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:    "ROLLBACK PREPARED",
}

// fixedTags are the tags whose spelling differs from the node type name.
var fixedTags = map[string]string{
	"create_stmt":                      "CREATE TABLE",
	"truncate_stmt":                    "TRUNCATE TABLE",
	"copy_stmt":                        "COPY",
	"variable_show_stmt":               "SHOW",
	"index_stmt":                       "CREATE INDEX",
	"view_stmt":                        "CREATE VIEW",
	"rule_stmt":                        "CREATE RULE",
	"create_seq_stmt":                  "CREATE SEQUENCE",
	"alter_seq_stmt":                   "ALTER SEQUENCE",
	"create_trig_stmt":                 "CREATE TRIGGER",
	"create_event_trig_stmt":           "CREATE EVENT TRIGGER",
	"alter_event_trig_stmt":            "ALTER EVENT TRIGGER",
	"create_plang_stmt":                "CREATE LANGUAGE",
	"alter_role_set_stmt":              "ALTER ROLE",
	"createdb_stmt":                    "CREATE DATABASE",
	"dropdb_stmt":                      "DROP DATABASE",
	"alter_database_set_stmt":          "ALTER DATABASE",
	"alter_database_refresh_coll_stmt": "ALTER DATABASE",
	"create_table_space_stmt":          "CREATE TABLESPACE",
	"drop_table_space_stmt":            "DROP TABLESPACE",
	"alter_table_space_options_stmt":   "ALTER TABLESPACE",
	"alter_extension_contents_stmt":    "ALTER EXTENSION",
	"create_fdw_stmt":                  "CREATE FOREIGN DATA WRAPPER",
	"alter_fdw_stmt":                   "ALTER FOREIGN DATA WRAPPER",
	"create_foreign_server_stmt":       "CREATE SERVER",
	"alter_foreign_server_stmt":        "ALTER SERVER",
	"create_am_stmt":                   "CREATE ACCESS METHOD",
	"create_op_class_stmt":             "CREATE OPERATOR CLASS",
	"create_op_family_stmt":            "CREATE OPERATOR FAMILY",
	"alter_op_family_stmt":             "ALTER OPERATOR FAMILY",
	"create_stats_stmt":                "CREATE STATISTICS",
	"alter_stats_stmt":                 "ALTER STATISTICS",
	"composite_type_stmt":              "CREATE TYPE",
	"create_enum_stmt":                 "CREATE TYPE",
	"create_range_stmt":                "CREATE TYPE",
	"alter_enum_stmt":                  "ALTER TYPE",
	"declare_cursor_stmt":              "DECLARE CURSOR",
	"sec_label_stmt":                   "SECURITY LABEL",
	"refresh_mat_view_stmt":            "REFRESH MATERIALIZED VIEW",
	"check_point_stmt":                 "CHECKPOINT",
	"lock_stmt":                        "LOCK TABLE",
	"alter_tsdictionary_stmt":          "ALTER TEXT SEARCH DICTIONARY",
	"alter_tsconfiguration_stmt":       "ALTER TEXT SEARCH CONFIGURATION",
}

// objectName spells an ObjectType as PostgreSQL's command tags do (OBJECT_MATVIEW
// → "MATERIALIZED VIEW"); sub-objects name their parent (a column → "TABLE"),
// as AlterObjectTypeCommandTag does.
func objectName(t pg_query.ObjectType) string {
	if s, ok := objectNames[t]; ok {
		return s
	}
	return strings.ReplaceAll(strings.TrimPrefix(t.String(), "OBJECT_"), "_", " ")
}

var objectNames = map[pg_query.ObjectType]string{
	pg_query.ObjectType_OBJECT_TYPE_UNDEFINED:        "OBJECT",
	pg_query.ObjectType_OBJECT_MATVIEW:               "MATERIALIZED VIEW",
	pg_query.ObjectType_OBJECT_FDW:                   "FOREIGN DATA WRAPPER",
	pg_query.ObjectType_OBJECT_FOREIGN_SERVER:        "SERVER",
	pg_query.ObjectType_OBJECT_LARGEOBJECT:           "LARGE OBJECT",
	pg_query.ObjectType_OBJECT_OPCLASS:               "OPERATOR CLASS",
	pg_query.ObjectType_OBJECT_OPFAMILY:              "OPERATOR FAMILY",
	pg_query.ObjectType_OBJECT_STATISTIC_EXT:         "STATISTICS",
	pg_query.ObjectType_OBJECT_TSCONFIGURATION:       "TEXT SEARCH CONFIGURATION",
	pg_query.ObjectType_OBJECT_TSDICTIONARY:          "TEXT SEARCH DICTIONARY",
	pg_query.ObjectType_OBJECT_TSPARSER:              "TEXT SEARCH PARSER",
	pg_query.ObjectType_OBJECT_TSTEMPLATE:            "TEXT SEARCH TEMPLATE",
	pg_query.ObjectType_OBJECT_COLUMN:                "TABLE",
	pg_query.ObjectType_OBJECT_TABCONSTRAINT:         "TABLE",
	pg_query.ObjectType_OBJECT_ATTRIBUTE:             "TYPE",
	pg_query.ObjectType_OBJECT_DOMCONSTRAINT:         "DOMAIN",
	pg_query.ObjectType_OBJECT_PARAMETER_ACL:         "PARAMETER",
	pg_query.ObjectType_OBJECT_PUBLICATION_REL:       "PUBLICATION",
	pg_query.ObjectType_OBJECT_PUBLICATION_NAMESPACE: "PUBLICATION",
}
