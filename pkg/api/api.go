// Package api holds the JSON types of the gateway's HTTPS API, shared by the
// gateway (pkg/gateway) and its client (pkg/client).
package api

import "time"

// Error codes carried by Error.Code.
const (
	CodeAuth       = "auth"        // no token, or a token that failed verification
	CodeDenied     = "denied"      // the caller may not do this
	CodeBadRequest = "bad_request" // the request itself is wrong
	CodeNotFound   = "not_found"
	CodeInternal   = "internal"
)

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Whoami is GET /v1/whoami.
type Whoami struct {
	Principal    string   `json:"principal"` // "user:alice", "service:etl"
	Kind         string   `json:"kind"`
	Name         string   `json:"name"`
	Subject      string   `json:"subject"`
	Issuer       string   `json:"issuer"`
	Groups       []string `json:"groups"`
	Admin        bool     `json:"admin"`
	Auditor      bool     `json:"auditor"`
	PolicyCommit string   `json:"policy_commit"`
}

// Target is one entry of GET /v1/targets: a target the caller may reach.
type Target struct {
	Name    string     `json:"name"`
	Kind    string     `json:"kind"`
	Access  string     `json:"access"`
	Grant   string     `json:"grant"`
	Expires *time.Time `json:"expires,omitempty"`
}

// Commit is a policy commit.
type Commit struct {
	Hash    string    `json:"hash"`
	Time    time.Time `json:"time"`
	Subject string    `json:"subject"`
}

// PolicyStatus is GET /v1/policy/status.
type PolicyStatus struct {
	Source      string    `json:"source"`
	Branch      string    `json:"branch"`
	Live        Commit    `json:"live"`
	LiveSince   time.Time `json:"live_since"`
	LastTried   Commit    `json:"last_tried"`
	LastTriedAt time.Time `json:"last_tried_at"`
	LastError   string    `json:"last_error,omitempty"`
}

// VerifyReport is GET /v1/audit/verify.
type VerifyReport struct {
	OK       bool   `json:"ok"`
	Events   int64  `json:"events"`
	FirstBad int64  `json:"first_bad,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// Endpoints is GET /v1/endpoints: where the gateway's native listeners are.
type Endpoints struct {
	Postgres string `json:"postgres,omitempty"` // host:port, empty when off
}
