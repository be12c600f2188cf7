//go:build !linux

package postgres

// Without epoll, sessions always relay on their two goroutines.

// loopSession is never created on this platform.
type loopSession struct{}

func (ls *loopSession) kick() {}

// relayInLoop leaves ss to its goroutines.
func (ss *session) relayInLoop(client, target *relayConn) (feErr, beErr error) { return nil, nil }
