//go:build cgo

package sqlclass

import pg_query "github.com/pganalyze/pg_query_go/v6"

// parse is PostgreSQL's own parser, linked in through cgo.
var parse = pg_query.Parse
