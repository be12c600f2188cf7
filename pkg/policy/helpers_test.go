package policy

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// classify is a tiny classifier for tests: one statement per ';', its tag
// from the leading keywords. It stands in for pkg/sqlclass, which policy
// must not import.
func classify(sql string) (Request, error) {
	req := Request{Text: sql}
	for _, part := range strings.Split(sql, ";") {
		w := strings.Fields(strings.ToUpper(part))
		if len(w) == 0 {
			continue
		}
		var s Statement
		switch w[0] {
		case "SELECT":
			s = Statement{Tag: "SELECT", Access: AccessRead}
		case "INSERT", "UPDATE", "DELETE":
			s = Statement{Tag: w[0], Access: AccessWrite}
		case "TRUNCATE":
			s = Statement{Tag: "TRUNCATE TABLE", Access: AccessAdmin}
		case "CREATE", "DROP", "ALTER":
			if len(w) < 2 {
				return Request{}, fmt.Errorf("syntax error at end of input")
			}
			s = Statement{Tag: w[0] + " " + w[1], Access: AccessAdmin}
		default:
			return Request{}, fmt.Errorf("syntax error at or near %q", w[0])
		}
		req.Statements = append(req.Statements, s)
	}
	return req, nil
}

// baseFiles is a small valid policy; tests copy it and change files.
func baseFiles() map[string]string {
	return map[string]string{
		"identity.toml": `[[issuer]]
name = "dev"
audience = "gatectl"

[[service_account]]
name = "etl"
issuer = "dev"
[service_account.match]
sub = "etl"
`,
		"targets/orders.toml": `kind = "postgres"
address = "127.0.0.1:5432"
database = "orders"
[credentials.read]
user = "orders_ro"
password = "env:ORDERS_RO_PASSWORD"
[credentials.write]
user = "orders_rw"
password = "file:/run/secrets/orders_rw"
`,
		"grants/orders.toml": `[[grant]]
id = "etl-orders-read"
to = "service:etl"
target = "orders"
access = "read"
owner = "group:dba"
reason = "nightly export"
`,
		"rules/safety.toml": `[[deny]]
id = "no-drop"
targets = ["*"]
statements = ["DROP", "TRUNCATE"]
message = "destructive DDL is not allowed"
`,
	}
}

func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys
}

func mustLoad(t *testing.T, files map[string]string) *Policy {
	t.Helper()
	p, err := Load(mapFS(files))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return p
}
