// Package sqlclass classifies PostgreSQL statements into access levels with
// the real PostgreSQL parser (pg_query), for the gateway's deny, hold and
// credential-selection decisions.
//
// Classification fails closed: input that cannot be parsed is an error, and a
// statement this package does not positively recognise as a read or a write is
// LevelAdmin. The upstream credential picked from the level is the second line
// of defence: the database enforces the same level again.
package sqlclass
