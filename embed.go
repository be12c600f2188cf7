// Package gatectl holds what the gatectl module embeds at its root: the
// policy repository template that `gatectl policy init` and `gatectl gateway
// --dev` start from.
package gatectl

import (
	"embed"
	"io/fs"
)

//go:embed all:policy-repo-template
var policyTemplate embed.FS

// PolicyTemplate is the policy repository template: gatectl.toml,
// identity.toml, targets/, grants/, rules/, tests/, CODEOWNERS, README.md and
// .github/workflows/policy.yml, rooted at the template's top directory.
func PolicyTemplate() fs.FS {
	sub, err := fs.Sub(policyTemplate, "policy-repo-template")
	if err != nil { // only for an invalid path, which this constant is not
		panic(err)
	}
	return sub
}
