//go:build !cgo

package sqlclass

import pgquery "github.com/wasilibs/go-pgquery"

// parse is PostgreSQL's own parser compiled to WebAssembly and run by a
// pure-Go runtime, for builds without cgo (cross-compiled release archives).
// It returns the same parse tree as the cgo build, several times slower;
// the gateway caches classifications by statement text.
var parse = pgquery.Parse
