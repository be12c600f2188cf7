// Package postgres is gatectl's PostgreSQL wire-protocol gateway: it accepts
// PostgreSQL clients (TLS, or plaintext where allowed), authenticates them with
// the OIDC token they send as their password, dials the target with the
// gateway's own credential and relays the session message by message, checking
// every statement before it reaches the target.
//
// The relay frames messages itself into reused buffers and forwards bytes
// without re-encoding; it decodes only Query, Parse, Bind (names), Execute
// (portal), Close, FunctionCall and Terminate from the client and
// CommandComplete, ErrorResponse (SQLSTATE) and ReadyForQuery from the target.
//
// Plaintext sessions spend their steady state on an epoll event loop (one OS
// thread per two CPUs, like pgbouncer's single thread), which handles complete
// messages where they arrive; anything else (TLS, large messages, a slow
// peer, the end of a session) runs on one goroutine per direction. Both run
// the same message handlers; loop_linux.go says when a session switches.
//
// The package talks to the rest of gatectl only through the interfaces in
// api.go: an Authenticator builds a Session, a StatementChecker decides each
// statement, and an Observer receives audit events.
package postgres
