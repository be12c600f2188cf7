// Package sqlrequest turns SQL text into a policy.Request by classifying it
// with the PostgreSQL parser (pkg/sqlclass). It is the bridge between the
// pure policy model and the parser, used by the gateway and by
// `gatectl policy check`.
package sqlrequest

import (
	"fmt"

	"github.com/gatectl/gatectl/pkg/policy"
	"github.com/gatectl/gatectl/pkg/sqlclass"
)

// FromSQL classifies sql and returns the request it makes. An error means the
// statement could not be classified and must be refused.
func FromSQL(sql string) (policy.Request, error) {
	res, err := sqlclass.Classify(sql)
	if err != nil {
		return policy.Request{Text: sql}, err
	}
	return FromResult(sql, res)
}

// FromResult converts a classification into a request.
func FromResult(sql string, res *sqlclass.Result) (policy.Request, error) {
	req := policy.Request{Text: sql, Statements: make([]policy.Statement, len(res.Statements))}
	for i, st := range res.Statements {
		a, err := Access(st.Level)
		if err != nil {
			return policy.Request{Text: sql}, err
		}
		req.Statements[i] = policy.Statement{Tag: st.Tag, Access: a, Why: st.Reason, Opaque: st.Opaque, Forbidden: st.Forbidden}
		for _, t := range st.Tags {
			if t != st.Tag {
				req.Statements[i].Nested = append(req.Statements[i].Nested, t)
			}
		}
	}
	return req, nil
}

// Access maps a statement's level to the access level it needs. Fail
// closed: an unknown level is an error, never read.
func Access(l sqlclass.Level) (policy.Access, error) {
	switch l {
	case sqlclass.LevelRead:
		return policy.AccessRead, nil
	case sqlclass.LevelWrite:
		return policy.AccessWrite, nil
	case sqlclass.LevelAdmin:
		return policy.AccessAdmin, nil
	}
	return 0, fmt.Errorf("statement has an unknown level %d", l)
}
