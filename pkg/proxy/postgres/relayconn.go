package postgres

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// loopDisabled keeps sessions off the event loop (for tests of goroutine
// mode).
var loopDisabled atomic.Bool

// loopStashes counts loop-mode writes that met a full socket.
var loopStashes atomic.Int64

// errWouldBlock is what a relayConn in loop mode returns from Read when the
// socket has nothing to read; the event loop then waits for readiness.
var errWouldBlock = errors.New("read would block")

// relayConn is one peer of a relayed session, as the session's buffered
// readers and writers see it. In goroutine mode it is a plain net.Conn. In
// loop mode the event loop owns the socket's descriptor: Read never blocks
// (it returns errWouldBlock), and Write never blocks either: what the socket
// will not take yet is kept in stash, and the loop hands the session back to
// goroutine mode, whose first write sends the stash.
type relayConn struct {
	conn net.Conn
	// fd is the socket in loop mode, -1 in goroutine mode.
	fd int
	// stash holds bytes a loop-mode Write accepted that the socket did not.
	stash []byte
	// rerr is a read error met in loop mode; goroutine-mode Reads return it,
	// so the relay sees the same end of input whichever mode read it.
	rerr error
	// reads counts the reads that returned data; the reader's goroutine
	// (or the loop) owns it.
	reads uint64
}

func newRelayConn(c net.Conn) *relayConn { return &relayConn{conn: c, fd: -1} }

func (rc *relayConn) Read(p []byte) (n int, err error) {
	switch {
	case rc.fd >= 0:
		n, err = rc.loopRead(p)
	case rc.rerr != nil:
		return 0, rc.rerr
	default:
		n, err = rc.conn.Read(p)
	}
	if n > 0 {
		rc.reads++
	}
	return n, err
}

func (rc *relayConn) Write(p []byte) (int, error) {
	if rc.fd >= 0 {
		return rc.loopWrite(p)
	}
	if err := rc.flushStash(); err != nil {
		return 0, err
	}
	return rc.conn.Write(p)
}

// flushStash sends what loop mode could not, in goroutine mode.
func (rc *relayConn) flushStash() error {
	if len(rc.stash) == 0 {
		return nil
	}
	_, err := rc.conn.Write(rc.stash)
	rc.stash = nil
	return err
}

// blocked reports whether a loop-mode Write met a full socket.
func (rc *relayConn) blocked() bool { return len(rc.stash) > 0 }

// loopRead reads once from the socket without blocking.
func (rc *relayConn) loopRead(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, errno := sockRecv(uintptr(rc.fd), p)
		switch errno {
		case 0:
			if n == 0 {
				rc.rerr = io.EOF
				return 0, io.EOF
			}
			return n, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, errWouldBlock
		}
		rc.rerr = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("recvfrom", errno)}
		return 0, rc.rerr
	}
}

// loopWrite writes p without blocking; what the socket does not take is
// stashed for goroutine mode.
func (rc *relayConn) loopWrite(p []byte) (int, error) {
	if len(rc.stash) > 0 {
		rc.stash = append(rc.stash, p...)
		return len(p), nil
	}
	for done := 0; done < len(p); {
		rest := p[done:]
		n, errno := sockSend(uintptr(rc.fd), rest)
		switch errno {
		case 0:
			done += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			loopStashes.Add(1)
			rc.stash = append(rc.stash[:0], rest...)
			return len(p), nil
		default:
			return done, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("sendto", errno)}
		}
	}
	return len(p), nil
}

// errNotSocket is why a connection without a descriptor stays off the loop.
var errNotSocket = errors.New("connection has no socket descriptor")

// closedConn stands in for a socket the session lost: every operation fails.
type closedConn struct{}

func (closedConn) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (closedConn) Write([]byte) (int, error)        { return 0, net.ErrClosed }
func (closedConn) Close() error                     { return nil }
func (closedConn) LocalAddr() net.Addr              { return nil }
func (closedConn) RemoteAddr() net.Addr             { return nil }
func (closedConn) SetDeadline(time.Time) error      { return net.ErrClosed }
func (closedConn) SetReadDeadline(time.Time) error  { return net.ErrClosed }
func (closedConn) SetWriteDeadline(time.Time) error { return net.ErrClosed }
