// Package repo follows gatectl's policy git repository: it keeps a bare clone
// of one branch under the gateway's data dir, fetches it on an interval and on
// demand, and makes a commit live only after the caller's loader accepts it,
// so a broken commit never replaces the last good policy. It also creates new
// policy repositories from a template (Init).
//
// The package knows nothing about the policy model: a Follower is generic over
// what the Loader builds from a commit's files.
package repo
