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
)

// functionRules maps a function name (lower case, without schema) to its
// rule. Functions are matched by name whatever their schema, so a copy of a
// dangerous function installed in another schema (extensions such as dblink
// can live anywhere) is caught too: erring high is the closed side. A
// function not listed here keeps the statement's level: the upstream role,
// picked from that level, limits what an unknown function may do.
var functionRules = map[string]fnRule{
	// Server file system access.
	"pg_read_file":        {LevelAdmin, reasonServerFiles},
	"pg_read_binary_file": {LevelAdmin, reasonServerFiles},
	"pg_stat_file":        {LevelAdmin, reasonServerFiles},
	"pg_ls_dir":           {LevelAdmin, reasonServerFiles},
	"pg_logdir_ls":        {LevelAdmin, reasonServerFiles},
	"lo_import":           {LevelAdmin, reasonServerFiles},
	"lo_export":           {LevelAdmin, reasonServerFiles},

	// Functions that run SQL passed as a string.
	"query_to_xml":               {LevelAdmin, reasonRunsSQL},
	"query_to_xmlschema":         {LevelAdmin, reasonRunsSQL},
	"query_to_xml_and_xmlschema": {LevelAdmin, reasonRunsSQL},
	"cursor_to_xml":              {LevelAdmin, reasonRunsSQL},
	"cursor_to_xmlschema":        {LevelAdmin, reasonRunsSQL},
	"ts_stat":                    {LevelAdmin, reasonRunsSQL},
	"ts_rewrite":                 {LevelAdmin, reasonRunsSQL},

	// Server and session control, settings.
	"pg_terminate_backend":           {LevelAdmin, reasonServerCtl},
	"pg_cancel_backend":              {LevelAdmin, reasonServerCtl},
	"pg_reload_conf":                 {LevelAdmin, reasonServerCtl},
	"pg_rotate_logfile":              {LevelAdmin, reasonServerCtl},
	"pg_promote":                     {LevelAdmin, reasonServerCtl},
	"pg_log_backend_memory_contexts": {LevelAdmin, reasonServerCtl},
	"pg_import_system_collations":    {LevelAdmin, reasonServerCtl},
	"pg_stat_statements_reset":       {LevelAdmin, reasonServerCtl},
	"set_config":                     {LevelAdmin, reasonSetting},

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
}

// functionPrefixes catch whole families, checked after functionRules.
var functionPrefixes = []struct {
	prefix string
	rule   fnRule
}{
	{"dblink", fnRule{LevelAdmin, reasonRemote}},
	{"pg_ls_", fnRule{LevelAdmin, reasonServerFiles}},
	{"pg_file_", fnRule{LevelAdmin, reasonServerFiles}},
	{"pg_stat_reset", fnRule{LevelAdmin, reasonServerCtl}},
	{"pg_create_", fnRule{LevelAdmin, reasonReplication}},
	{"pg_replication_origin_", fnRule{LevelAdmin, reasonReplication}},
	{"pg_logical_slot_", fnRule{LevelAdmin, reasonReplication}},
	{"pg_advisory_", fnRule{LevelRead, reasonLock}},
	{"pg_try_advisory_", fnRule{LevelRead, reasonLock}},
	// A large-object function not listed above: assume it writes.
	{"lo_", fnRule{LevelWrite, reasonLargeObject}},
}

// functionLevel returns the level a call of the function name (as written,
// possibly schema-qualified) implies, and whether it is in the table.
func functionLevel(name string) (Level, string, bool) {
	base := strings.ToLower(name[strings.LastIndexByte(name, '.')+1:])
	r, ok := functionRules[base]
	if !ok {
		for _, p := range functionPrefixes {
			if strings.HasPrefix(base, p.prefix) {
				r, ok = p.rule, true
				break
			}
		}
	}
	if !ok {
		return 0, "", false
	}
	return r.level, "function " + name + " " + r.reason, true
}
