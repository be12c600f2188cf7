package sqlclass

import (
	"strings"
)

// fnRule is what calling a function implies about a statement.
type fnRule struct {
	level  Level
	reason string
}

// Reasons shared by families of functions.
const (
	reasonServerFiles = "reads or writes files on the database server"
	reasonRunsSQL     = "runs SQL given as text, which is not visible to the parser"
	reasonRemote      = "runs SQL on another database through dblink"
	reasonServerCtl   = "controls the server or other sessions"
	reasonSetting     = "changes settings, including the session's role"
	reasonReplication = "manages replication or backups"
	reasonLargeObject = "changes large objects"
	reasonSequence    = "changes a sequence"
	reasonNotify      = "signals other sessions, like NOTIFY"
	reasonLock        = "only takes an advisory lock"
	reasonXMLExport   = "reads tables, schemas or queries named in strings, which the parser cannot see"
	reasonXactID      = "assigns a transaction id, which a read-only transaction cannot"
	reasonIndexMaint  = "maintains an index, like VACUUM"
)

// functionRules maps a function name (lower case, without schema) to its
// rule. Functions are matched by name whatever their schema, so a copy of a
// dangerous function installed in another schema (extensions such as dblink
// can live anywhere) is caught too: erring high is the closed side. A
// function not listed here keeps the statement's level: the upstream role,
// picked from that level, limits what an unknown function may do, and one
// that is not a built-in makes the statement Opaque (walk.go), so every rule
// on the target covers it.
var functionRules = map[string]fnRule{
	// Server file system access.
	"pg_read_file":        {LevelAdmin, reasonServerFiles},
	"pg_read_binary_file": {LevelAdmin, reasonServerFiles},
	"pg_read_file_old":    {LevelAdmin, reasonServerFiles},
	"pg_stat_file":        {LevelAdmin, reasonServerFiles},
	"pg_ls_dir":           {LevelAdmin, reasonServerFiles},
	"pg_logdir_ls":        {LevelAdmin, reasonServerFiles},
	"lo_import":           {LevelAdmin, reasonServerFiles},
	"lo_export":           {LevelAdmin, reasonServerFiles},

	// Functions that run SQL passed as a string (the *_to_xml families are
	// prefix rules below).
	"cursor_to_xml":       {LevelAdmin, reasonRunsSQL},
	"cursor_to_xmlschema": {LevelAdmin, reasonRunsSQL},
	"ts_stat":             {LevelAdmin, reasonRunsSQL},
	"ts_rewrite":          {LevelAdmin, reasonRunsSQL},

	// Server and session control, settings.
	"pg_terminate_backend":           {LevelAdmin, reasonServerCtl},
	"pg_cancel_backend":              {LevelAdmin, reasonServerCtl},
	"pg_reload_conf":                 {LevelAdmin, reasonServerCtl},
	"pg_rotate_logfile":              {LevelAdmin, reasonServerCtl},
	"pg_promote":                     {LevelAdmin, reasonServerCtl},
	"pg_log_backend_memory_contexts": {LevelAdmin, reasonServerCtl},
	"pg_import_system_collations":    {LevelAdmin, reasonServerCtl},
	"pg_stat_statements_reset":       {LevelAdmin, reasonServerCtl},
	"pg_export_snapshot":             {LevelAdmin, "exports a snapshot other sessions can import"},
	"pg_nextoid":                     {LevelAdmin, "assigns an object id, as creating an object does"},
	// The built-in set_config with a literal allow-listed parameter is read
	// (setConfigLevel); this rule covers every other set_config.
	"set_config": {LevelAdmin, reasonSetting},

	// Index maintenance.
	"brin_summarize_new_values": {LevelAdmin, reasonIndexMaint},
	"brin_summarize_range":      {LevelAdmin, reasonIndexMaint},
	"brin_desummarize_range":    {LevelAdmin, reasonIndexMaint},
	"gin_clean_pending_list":    {LevelAdmin, reasonIndexMaint},

	// Replication and backup.
	"pg_switch_wal":                     {LevelAdmin, reasonReplication},
	"pg_backup_start":                   {LevelAdmin, reasonReplication},
	"pg_backup_stop":                    {LevelAdmin, reasonReplication},
	"pg_start_backup":                   {LevelAdmin, reasonReplication},
	"pg_stop_backup":                    {LevelAdmin, reasonReplication},
	"pg_wal_replay_pause":               {LevelAdmin, reasonReplication},
	"pg_wal_replay_resume":              {LevelAdmin, reasonReplication},
	"pg_logical_emit_message":           {LevelAdmin, reasonReplication},
	"pg_drop_replication_slot":          {LevelAdmin, reasonReplication},
	"pg_copy_physical_replication_slot": {LevelAdmin, reasonReplication},
	"pg_copy_logical_replication_slot":  {LevelAdmin, reasonReplication},
	"pg_replication_slot_advance":       {LevelAdmin, reasonReplication},
	"pg_log_standby_snapshot":           {LevelAdmin, reasonReplication},

	// Large-object writes; the reads (lo_get, loread, lo_open, lo_lseek,
	// lo_tell, lo_close) are listed to say they were considered.
	"lo_creat":      {LevelWrite, reasonLargeObject},
	"lo_create":     {LevelWrite, reasonLargeObject},
	"lo_unlink":     {LevelWrite, reasonLargeObject},
	"lo_put":        {LevelWrite, reasonLargeObject},
	"lo_from_bytea": {LevelWrite, reasonLargeObject},
	"lowrite":       {LevelWrite, reasonLargeObject},
	"lo_truncate":   {LevelWrite, reasonLargeObject},
	"lo_truncate64": {LevelWrite, reasonLargeObject},
	"lo_get":        {LevelRead, "only reads a large object"},
	"loread":        {LevelRead, "only reads a large object"},
	"lo_open":       {LevelRead, "only opens a large object"},
	"lo_close":      {LevelRead, "only closes a large object"},
	"lo_lseek":      {LevelRead, "only moves in a large object"},
	"lo_lseek64":    {LevelRead, "only moves in a large object"},
	"lo_tell":       {LevelRead, "only reads a large object position"},
	"lo_tell64":     {LevelRead, "only reads a large object position"},

	// Data-changing builtins.
	"nextval":   {LevelWrite, reasonSequence},
	"setval":    {LevelWrite, reasonSequence},
	"pg_notify": {LevelWrite, reasonNotify},
	// Their _if_assigned variants only read the id.
	"txid_current":       {LevelWrite, reasonXactID},
	"pg_current_xact_id": {LevelWrite, reasonXactID},
}

// functionPrefixes catch whole families, checked after functionRules.
// extension marks families that live outside pg_catalog (dblink, adminpack),
// which attribute notation must catch although they are not built-ins.
var functionPrefixes = []struct {
	prefix    string
	rule      fnRule
	extension bool
}{
	{"dblink", fnRule{LevelAdmin, reasonRemote}, true},
	{"pg_ls_", fnRule{LevelAdmin, reasonServerFiles}, false},
	{"pg_file_", fnRule{LevelAdmin, reasonServerFiles}, true},
	{"pg_stat_reset", fnRule{LevelAdmin, reasonServerCtl}, false},
	{"pg_create_", fnRule{LevelAdmin, reasonReplication}, false},
	{"pg_replication_origin_", fnRule{LevelAdmin, reasonReplication}, false},
	{"pg_logical_slot_", fnRule{LevelAdmin, reasonReplication}, false},
	{"pg_advisory_", fnRule{LevelRead, reasonLock}, false},
	{"pg_try_advisory_", fnRule{LevelRead, reasonLock}, false},
	// table_to_xml, schema_to_xmlschema, database_to_xml_and_xmlschema,
	// query_to_xml… and whatever later joins these families.
	{"table_to_xml", fnRule{LevelAdmin, reasonXMLExport}, false},
	{"schema_to_xml", fnRule{LevelAdmin, reasonXMLExport}, false},
	{"database_to_xml", fnRule{LevelAdmin, reasonXMLExport}, false},
	{"query_to_xml", fnRule{LevelAdmin, reasonRunsSQL}, false},
	// A large-object function not listed above: assume it writes.
	{"lo_", fnRule{LevelWrite, reasonLargeObject}, false},
}

// functionLevel returns the level a call of the function name (as written,
// possibly schema-qualified) implies, and whether it is in the table.
func functionLevel(name string) (Level, string, bool) {
	r, ok := lookupRule(baseName(name), false)
	if !ok {
		return 0, "", false
	}
	return r.level, "function " + name + " " + r.reason, true
}

// attributeLevel is functionLevel for a field name in attribute notation
// ((x).f or alias.f), which PostgreSQL runs as f(x) when x has no column f.
// The parser cannot tell such a call from a column, so only names that are
// surely functions count: an exact rule, a built-in in a prefix family, or
// an extension family. A column named lo_id is not taken for lo_*.
func attributeLevel(field string) (Level, string, bool) {
	r, ok := lookupRule(asciiLower(field), !builtinFunctions[field])
	if !ok {
		return 0, "", false
	}
	return r.level, "function " + field + ", called in attribute notation, " + r.reason, true
}

// lookupRule finds the rule for a lower-case function name; with
// extensionOnly, prefix families are matched only if they are extensions.
func lookupRule(base string, extensionOnly bool) (fnRule, bool) {
	if r, ok := functionRules[base]; ok {
		return r, true
	}
	for _, p := range functionPrefixes {
		if strings.HasPrefix(base, p.prefix) && (p.extension || !extensionOnly) {
			return p.rule, true
		}
	}
	return fnRule{}, false
}

// baseName is a qualified name's last part, lower-cased: functions are
// matched by name whatever their schema and however they were quoted, since
// erring high is the closed side.
func baseName(name string) string {
	return strings.ToLower(name[strings.LastIndexByte(name, '.')+1:])
}
