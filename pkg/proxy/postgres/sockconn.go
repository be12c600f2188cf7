package postgres

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// sockConn is a TCP connection whose Read and Write issue the recvfrom and
// sendto system calls directly (see sockRecv), without the runtime's
// syscall bookkeeping.
//
// The relay does two reads and two writes per round trip on every session,
// and on a small machine the runtime's per-syscall work is a large share of
// the gateway's CPU: entersyscall and exitsyscall, and the scheduler's
// monitor taking the P away from a goroutine "blocked" in a loopback write
// that is merely slow, which wakes another thread. The socket is
// non-blocking (the runtime's poller owns it), so these calls never block:
// they return data, or EAGAIN, on which the goroutine parks in the poller
// exactly as net.Conn would. Deadlines, Close and the poller's wakeups work
// unchanged because waiting goes through syscall.RawConn.
//
// Everything other than Read and Write is the wrapped connection's,
// CloseWrite included.
type sockConn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The state of the call in progress, shared with the method values
	// below so that a Read or Write allocates nothing. rmu and wmu keep
	// concurrent Reads (or Writes) from sharing it; a Read and a Write may
	// run at once, as on any net.Conn.
	rmu, wmu   sync.Mutex
	rbuf, wbuf []byte
	rn, wn     int
	rerr, werr error
	readFn     func(fd uintptr) bool
	writeFn    func(fd uintptr) bool
}

// newSockConn returns c with the direct-syscall Read and Write when c is a
// TCP connection, and c itself otherwise.
func newSockConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	s := &sockConn{TCPConn: tc, rc: rc}
	s.readFn, s.writeFn = s.doRead, s.doWrite
	return s
}

func (s *sockConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rbuf, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.readFn)
	s.rbuf = nil
	if err == nil {
		err = s.rerr
	}
	if err != nil {
		return s.rn, s.opError("read", err)
	}
	return s.rn, nil
}

// doRead makes one read attempt; false means "wait until readable".
func (s *sockConn) doRead(fd uintptr) bool {
	for {
		n, errno := sockRecv(fd, s.rbuf)
		switch errno {
		case 0:
			s.rn = n
			if n == 0 {
				s.rerr = io.EOF
			}
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.rerr = errno
		return true
	}
}

func (s *sockConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.wbuf, s.wn, s.werr = p, 0, nil
	err := s.rc.Write(s.writeFn)
	s.wbuf = nil
	if err == nil {
		err = s.werr
	}
	if err != nil {
		return s.wn, s.opError("write", err)
	}
	return s.wn, nil
}

// doWrite writes what it can; false means "wait until writable".
func (s *sockConn) doWrite(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		rest := s.wbuf[s.wn:]
		n, errno := sockSend(fd, rest)
		switch errno {
		case 0:
			s.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.werr = errno
			return true
		}
	}
	return true
}

// opError wraps err the way net.Conn does, except for io.EOF, which bufio
// and io.ReadFull expect bare.
func (s *sockConn) opError(op string, err error) error {
	if err == io.EOF {
		return io.EOF
	}
	return &net.OpError{Op: op, Net: "tcp", Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: err}
}
