package sqlclass

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/gatectl/gatectl/pkg/pgenc"
)

// settingRule says which changes of a configuration parameter are read level.
type settingRule int

const (
	// anyValue: every value is harmless.
	anyValue settingRule = iota + 1
	// onlyOn: only turning the parameter on is harmless (read-only mode).
	onlyOn
)

// readSettings is the allow-list of parameters a session may SET below
// admin: the ones drivers and psql send, which change how values are shown,
// how long statements may wait, or transaction modes that only restrict.
// Every other parameter is admin (fail closed): standard_conforming_strings
// and client_encoding change how the server reads the statements this
// package parsed (a string the parser saw as one literal could hide a second
// statement), search_path changes which function an unqualified name calls,
// custom parameters (app.tenant) often feed row-level security, and others
// load libraries or change resource limits.
var readSettings = map[string]settingRule{
	"application_name":                    anyValue,
	"datestyle":                           anyValue,
	"intervalstyle":                       anyValue,
	"timezone":                            anyValue,
	"extra_float_digits":                  anyValue,
	"statement_timeout":                   anyValue,
	"lock_timeout":                        anyValue,
	"idle_in_transaction_session_timeout": anyValue,
	"idle_session_timeout":                anyValue,
	"client_min_messages":                 anyValue,
	"bytea_output":                        anyValue,
	"transaction_isolation":               anyValue,
	"default_transaction_isolation":       anyValue,
	"transaction_deferrable":              anyValue,
	"default_transaction_deferrable":      anyValue,
	"transaction_read_only":               onlyOn,
	"default_transaction_read_only":       onlyOn,
}

// privilegeSettings change who the session acts as or whether triggers and
// rules fire; they get their own reason. RESET ALL does not touch role and
// session_authorization (they are GUC_NO_RESET_ALL in PostgreSQL).
var privilegeSettings = map[string]bool{"role": true, "session_authorization": true, "session_replication_role": true}

const settingsHint = "only client settings such as application_name, DateStyle, TimeZone, timeouts and transaction isolation may be changed below admin"

// setLevel classifies SET, SET LOCAL, SET SESSION, RESET and the SET
// TRANSACTION forms against the allow-list.
func setLevel(x *pg_query.VariableSetStmt) (Level, string) {
	name := asciiLower(x.GetName())
	switch x.GetKind() {
	case pg_query.VariableSetKind_VAR_RESET_ALL:
		// RESET ALL restores every parameter to its value at session start,
		// which the gateway pins for the ones the parser depends on; role
		// and session_authorization are not reset by it.
		return LevelRead, "RESET ALL restores the session's starting settings"
	case pg_query.VariableSetKind_VAR_SET_MULTI:
		return transactionSettingsLevel(name, x.GetArgs())
	case pg_query.VariableSetKind_VAR_RESET, pg_query.VariableSetKind_VAR_SET_DEFAULT,
		pg_query.VariableSetKind_VAR_SET_CURRENT:
		// RESET restores the session's starting value. It is read only for
		// parameters whose every value is harmless, plus search_path, whose
		// starting value an administrator chose (role, database or gateway).
		if readSettings[name] == anyValue || name == "search_path" {
			return LevelRead, fmt.Sprintf("RESET of %s restores its starting value", name)
		}
	case pg_query.VariableSetKind_VAR_SET_VALUE:
		if settingAllowed(name, x.GetArgs()) {
			return LevelRead, fmt.Sprintf("SET of %s, a client setting", name)
		}
		if readSettings[name] == onlyOn {
			// Leaving read-only mode is what a write grant is for; drivers
			// do it (JDBC setReadOnly(false)).
			return LevelWrite, fmt.Sprintf("setting %s to anything but on lifts read-only mode", name)
		}
	}
	// Fail closed: any other parameter, value or statement form is admin.
	return LevelAdmin, settingReason(name)
}

// settingAllowed reports whether setting name to the value args (nil when
// the value is not a literal) is read level.
func settingAllowed(name string, args []*pg_query.Node) bool {
	switch readSettings[name] {
	case anyValue:
		return true
	case onlyOn:
		return len(args) == 1 && literalOn(args[0])
	}
	return false
}

func settingReason(name string) string {
	if privilegeSettings[name] {
		return fmt.Sprintf("SET or RESET of %s changes the privileges the session runs with", name)
	}
	if readSettings[name] == onlyOn {
		return fmt.Sprintf("setting %s to anything but on lifts read-only mode", name)
	}
	return fmt.Sprintf("changing %s needs admin: %s", name, settingsHint)
}

// transactionSettingsLevel classifies SET TRANSACTION and SET SESSION
// CHARACTERISTICS AS TRANSACTION: isolation levels, DEFERRABLE and READ ONLY
// are read; READ WRITE lifts read-only mode and needs write (JDBC sends it
// for setReadOnly(false)); SET TRANSACTION SNAPSHOT, which imports another
// session's snapshot, is admin.
func transactionSettingsLevel(name string, args []*pg_query.Node) (Level, string) {
	if name != "transaction" && name != "session characteristics" {
		return LevelAdmin, fmt.Sprintf("SET %s needs admin: %s", strings.ToUpper(name), settingsHint)
	}
	level, reason := LevelRead, "SET TRANSACTION of an isolation level or read-only mode"
	for _, a := range args {
		d := a.GetDefElem()
		if d == nil {
			return LevelAdmin, "SET TRANSACTION with an unrecognised option needs admin"
		}
		param := d.GetDefname()
		switch readSettings[param] {
		case anyValue:
		case onlyOn:
			if !literalOn(d.GetArg()) {
				level, reason = LevelWrite, "READ WRITE lifts read-only mode"
			}
		default:
			return LevelAdmin, settingReason(param)
		}
	}
	return level, reason
}

// setConfigLevel classifies a call of the built-in set_config(name, value,
// is_local) as SET would be: read when name is a literal allow-listed
// parameter (and, for read-only mode, the value a literal "on"), admin
// otherwise, since a computed name could be any parameter.
func setConfigLevel(fc *pg_query.FuncCall, name string) (Level, string) {
	if args := fc.GetArgs(); len(args) == 3 {
		if lit := args[0].GetAConst().GetSval(); lit != nil && settingAllowed(asciiLower(lit.GetSval()), args[1:2]) {
			return LevelRead, fmt.Sprintf("function %s changes %s, a client setting", name, asciiLower(lit.GetSval()))
		}
	}
	return LevelAdmin, fmt.Sprintf("function %s changes a setting given as a non-literal or not allowed below admin: %s", name, settingsHint)
}

// lexerSettings are the parameters whose value decides how PostgreSQL
// splits statement text into tokens; the gateway pins them to values this
// package parses as PostgreSQL does.
var lexerSettings = map[string]bool{"standard_conforming_strings": true, "client_encoding": true}

const forbiddenHint = "it would make PostgreSQL read later statements differently from the gateway, so it is refused for every grant"

// settingForbidden says why a SET (or ALTER … SET) of a lexer setting to a
// value the gateway cannot parse under is refused for every grant, or "".
// RESET and SET … TO DEFAULT restore the value the gateway pinned or
// checked when the session started.
func settingForbidden(x *pg_query.VariableSetStmt) string {
	name := asciiLower(x.GetName())
	if !lexerSettings[name] || x.GetKind() != pg_query.VariableSetKind_VAR_SET_VALUE {
		return ""
	}
	if args := x.GetArgs(); len(args) == 1 && lexerValueSafe(name, args[0]) {
		return ""
	}
	return fmt.Sprintf("changing %s: %s", name, forbiddenHint)
}

// setConfigForbidden is settingForbidden for set_config(name, value,
// is_local): a name that is not a literal could be either parameter.
func setConfigForbidden(fc *pg_query.FuncCall, fn string) string {
	args := fc.GetArgs()
	if len(args) != 3 {
		return ""
	}
	lit := args[0].GetAConst().GetSval()
	if lit == nil {
		return fmt.Sprintf("function %s with a computed parameter name: %s", fn, forbiddenHint)
	}
	name := asciiLower(lit.GetSval())
	if !lexerSettings[name] || lexerValueSafe(name, args[1]) {
		return ""
	}
	return fmt.Sprintf("function %s changing %s: %s", fn, name, forbiddenHint)
}

// lexerValueSafe reports whether setting the lexer setting name to the
// literal n keeps the gateway's parsing right: standard_conforming_strings
// on, or a client_encoding in which no multibyte character holds an ASCII
// byte. Anything that is not a literal is not (fail closed).
func lexerValueSafe(name string, n *pg_query.Node) bool {
	if name == "standard_conforming_strings" {
		return literalOn(n)
	}
	c := n.GetAConst().GetSval()
	return c != nil && pgenc.Safe(c.GetSval())
}

// literalOn reports whether n is a literal that PostgreSQL reads as boolean
// true. Anything else, including expressions, is not (fail closed).
func literalOn(n *pg_query.Node) bool {
	c := n.GetAConst()
	switch {
	case c == nil:
		return false
	case c.GetIval() != nil:
		return c.GetIval().GetIval() == 1
	case c.GetBoolval() != nil:
		return c.GetBoolval().GetBoolval()
	case c.GetSval() != nil:
		switch asciiLower(c.GetSval().GetSval()) {
		case "on", "true", "yes", "1":
			return true
		}
	}
	return false
}

// asciiLower folds A-Z only, as PostgreSQL compares parameter names: a
// Unicode fold could make a name PostgreSQL does not know look like one on
// the allow-list.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}
