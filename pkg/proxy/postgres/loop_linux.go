package postgres

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The event loop relays sessions in their steady state the way pgbouncer
// does: one OS thread waits on every session's two sockets with epoll and
// handles each complete message where it arrives, with no goroutine switch
// per message. On a small machine those switches (a poller wakeup, a
// scheduler handoff and often a thread wakeup, twice per round trip) cost
// more CPU than the relaying itself.
//
// A session enters the loop after its startup, when both its sockets are
// plaintext TCP or Unix sockets (TLS stays on goroutines), and leaves it for
// good, back to its two goroutines, at the first thing the loop does not
// handle: a message larger than the relay buffer or over the size limit, a
// peer that does not take what the loop writes, end of input or an error on
// either side, the client's Terminate, or Server.Shutdown. Whatever the loop
// read but did not handle stays in the session's buffers, so the goroutines
// carry on from exactly where it stopped.
//
// The loop runs message handlers, and so the statement checker and the
// observer, on its thread: a slow checker or an audit log applying
// backpressure slows every session on the loop, as it would slow them all
// anyway.

var (
	loopsOnce sync.Once
	loops     []*eventLoop
	loopsErr  error
	nextLoop  atomic.Uint32
)

// sharedLoops returns the process's event loops, starting them on first
// use: one per two CPUs the runtime may use, so that relaying can use half
// the machine and the statement checker, the audit log and the goroutine
// sessions the rest.
func sharedLoops() ([]*eventLoop, error) {
	loopsOnce.Do(func() {
		n := max(1, runtime.GOMAXPROCS(0)/2)
		for range n {
			l, err := startLoop()
			if err != nil {
				loopsErr = err
				return
			}
			loops = append(loops, l)
		}
	})
	if len(loops) == 0 {
		return nil, loopsErr
	}
	return loops, nil
}

// eventLoop is one epoll instance and the thread that waits on it.
type eventLoop struct {
	epfd int
	// wakefd is an eventfd that wakes the loop to take requests.
	wakefd int

	mu       sync.Mutex
	requests []loopRequest

	// added and givenBack count the sessions the loop has taken and given
	// back.
	added, givenBack atomic.Int64

	// Owned by the loop thread.
	// byFD maps a descriptor to its session; descriptors are small
	// integers, so a slice is cheaper than a map on every event.
	byFD   []*loopSession
	events []syscall.EpollEvent
}

// loopRequest asks the loop to take a session (add) or give it back.
type loopRequest struct {
	ls  *loopSession
	add bool
}

// loopSession is a session while the loop relays it.
type loopSession struct {
	ss       *session
	loop     *eventLoop
	client   *relayConn
	target   *relayConn
	onClient func(typ byte, n int) error
	onTarget func(typ byte, n int) error
	// active is set while the loop relays the session (loop thread only).
	active bool
	// feErr and beErr are what a message handler returned on the client
	// and target side: the goroutines take over with them.
	feErr, beErr error
	// back is closed when the loop gives the session back.
	back chan struct{}
}

func startLoop() (*eventLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wakefd, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("eventfd2", errno)
	}
	l := &eventLoop{epfd: epfd, wakefd: int(wakefd), events: make([]syscall.EpollEvent, 128)}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(wakefd)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(wakefd), &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(int(wakefd))
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	go l.run()
	return l, nil
}

// relayInLoop relays ss on the event loop until the loop gives it back, and
// returns the handler errors the goroutines must act on first. It returns
// at once, with ss untouched, when ss cannot use the loop. A Shutdown that
// kicked the session off the loop is carried out before it returns.
func (ss *session) relayInLoop(client, target *relayConn) (feErr, beErr error) {
	if ss.up.tlsConfig != nil || ss.info.TLS {
		return nil, nil
	}
	if _, ok := ss.plan.Checker.(QuickChecker); !ok {
		// A checker that may only wait would stall every session on the
		// loop.
		return nil, nil
	}
	all, err := sharedLoops()
	if err != nil {
		ss.log.Debug("event loop unavailable; relaying on goroutines", "err", err)
		return nil, nil
	}
	l := all[int(nextLoop.Add(1))%len(all)]
	ss.modeMu.Lock()
	if ss.stopping || loopDisabled.Load() {
		ss.modeMu.Unlock()
		return nil, nil
	}
	cfd, err := detachFD(client.conn)
	if err != nil {
		ss.modeMu.Unlock()
		return nil, nil
	}
	tfd, err := detachFD(target.conn)
	if err != nil {
		syscall.Close(cfd)
		ss.modeMu.Unlock()
		return nil, nil
	}
	// The loop owns the sockets from here: close the runtime's descriptors,
	// which takes them out of its poller.
	client.conn.Close()
	target.conn.Close()
	client.fd, target.fd = cfd, tfd
	ls := &loopSession{ss: ss, loop: l, client: client, target: target, back: make(chan struct{}),
		onClient: ss.handleClientMessage, onTarget: ss.handleTargetMessage}
	ss.inLoop = ls
	// Requested under modeMu, so that a Shutdown's kick comes after it.
	l.request(loopRequest{ls: ls, add: true})
	ss.modeMu.Unlock()

	<-ls.back

	ss.modeMu.Lock()
	ss.inLoop = nil
	cc, cerr := attachFD(client.fd)
	tc, terr := attachFD(target.fd)
	client.fd, target.fd = -1, -1
	if cerr != nil || terr != nil {
		// Fail closed: without its sockets the session cannot go on.
		ss.log.Warn("session could not leave the event loop; closed", "err", errors.Join(cerr, terr))
		if cerr == nil {
			cc.Close()
		}
		if terr == nil {
			tc.Close()
		}
		cc, tc = closedConn{}, closedConn{}
		client.rerr, target.rerr = net.ErrClosed, net.ErrClosed
	}
	client.conn, ss.client = cc, cc
	target.conn, ss.up.conn = tc, tc
	stopping := ss.stopping
	ss.modeMu.Unlock()
	if stopping {
		// Shutdown kicked the session off the loop: end it now that its
		// connections are back.
		ss.shutdown()
	}
	return ls.feErr, ls.beErr
}

// kick asks the loop to give ls back (for Shutdown). The caller holds
// ls.ss.modeMu, which orders it after the request that added ls.
func (ls *loopSession) kick() { ls.loop.request(loopRequest{ls: ls}) }

func (l *eventLoop) request(r loopRequest) {
	l.mu.Lock()
	l.requests = append(l.requests, r)
	l.mu.Unlock()
	one := uint64(1)
	syscall.Write(l.wakefd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// run is the loop thread.
func (l *eventLoop) run() {
	runtime.LockOSThread()
	var taken []loopRequest
	for {
		// First look without giving up the P: under load an event is
		// usually ready, and a blocking call would hand the P back to the
		// scheduler and have to win it again. epoll_pwait with no signal
		// mask is epoll_wait, which arm64 does not have.
		r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
		n, err := int(r), error(nil)
		if e != 0 {
			n, err = 0, e
		}
		if n == 0 && err == nil {
			n, err = syscall.EpollWait(l.epfd, l.events, -1)
		}
		if err != nil {
			// EINTR only: the descriptors are the loop's own.
			continue
		}
		for i := range n {
			fd := l.events[i].Fd
			if int(fd) == l.wakefd {
				var buf [8]byte
				syscall.Read(l.wakefd, buf[:])
				l.mu.Lock()
				taken, l.requests = l.requests, taken[:0]
				l.mu.Unlock()
				for _, r := range taken {
					if r.add {
						l.add(r.ls)
					} else if r.ls.active {
						l.giveBack(r.ls)
					}
				}
				clear(taken)
				continue
			}
			var ls *loopSession
			if int(fd) < len(l.byFD) {
				ls = l.byFD[fd]
			}
			if ls == nil {
				continue // given back earlier in this batch
			}
			if int(fd) == ls.client.fd {
				l.pumpClient(ls)
			} else {
				l.pumpTarget(ls)
			}
		}
	}
}

// add starts relaying ls. Messages already buffered are handled at once:
// epoll only reports what is still in the sockets.
func (l *eventLoop) add(ls *loopSession) {
	ls.active = true
	ls.ss.onLoop = true
	l.added.Add(1)
	for _, fd := range []int{ls.client.fd, ls.target.fd} {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			ls.ss.log.Debug("event loop could not watch a socket; relaying on goroutines", "err", err)
			l.giveBack(ls)
			return
		}
		if fd >= len(l.byFD) {
			l.byFD = append(l.byFD, make([]*loopSession, fd+1-len(l.byFD))...)
		}
		l.byFD[fd] = ls
	}
	if l.pumpClient(ls) {
		l.pumpTarget(ls)
	}
}

// giveBack stops relaying ls and wakes its goroutine.
func (l *eventLoop) giveBack(ls *loopSession) {
	ls.active = false
	ls.ss.onLoop = false
	l.givenBack.Add(1)
	for _, fd := range []int{ls.client.fd, ls.target.fd} {
		if fd < len(l.byFD) && l.byFD[fd] == ls {
			syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
			l.byFD[fd] = nil
		}
	}
	close(ls.back)
}

// pumpClient handles what the client sent; false means ls was given back.
func (l *eventLoop) pumpClient(ls *loopSession) bool {
	ok, err := pump(ls.ss.fe, ls.target, ls.onClient)
	if !ok {
		ls.feErr = err
		l.giveBack(ls)
	}
	return ok
}

// pumpTarget handles what the target sent; false means ls was given back.
func (l *eventLoop) pumpTarget(ls *loopSession) bool {
	ok, err := pump(ls.ss.be, ls.client, ls.onTarget)
	if !ok {
		ls.beErr = err
		l.giveBack(ls)
	}
	return ok
}

// pump reads what c's input socket holds (one read) and handles every
// complete message in c's buffer, then flushes c's output (out). It returns
// ok=false when the goroutines must take over: err, if not nil, is what
// handle or the flush returned, for the goroutine to act on.
func pump(c *conduit, out *relayConn, handle func(typ byte, n int) error) (ok bool, err error) {
	read := false
	for {
		if c.discard > 0 {
			c.r.Discard(c.discard)
			c.discard = 0
		}
		need := 5
		if c.r.Buffered() >= 5 {
			hdr, _ := c.r.Peek(5)
			n := int(int32(binary.BigEndian.Uint32(hdr[1:]))) - 4
			if n < 0 || (c.maxBody > 0 && n > c.maxBody) || n+5 > c.r.Size() {
				// Malformed, over the limit or larger than the buffer:
				// the goroutines report or stream it.
				break
			}
			need = n + 5
		}
		if c.r.Buffered() < need {
			if read {
				// Wait for epoll rather than read until EAGAIN.
				return flushOut(c, out)
			}
			read = true
			if _, err := c.r.Peek(need); err != nil && err != errWouldBlock {
				break // end of input or a read error: in rerr for the goroutines
			}
			continue
		}
		typ, n, err := c.next()
		if err == nil {
			err = handle(typ, n)
		}
		if err == errCheckWouldWait {
			// The handler stopped before changing anything: leave the
			// message in the buffer for the goroutines to handle again.
			c.discard = 0
			c.bytes -= int64(n) + 5
			break
		}
		if err != nil {
			return false, err
		}
		if out.blocked() {
			return false, nil
		}
	}
	_, err = flushOut(c, out)
	return false, err
}

// flushOut flushes c's output; ok=false when out did not take all of it or
// failed.
func flushOut(c *conduit, out *relayConn) (ok bool, err error) {
	if err := c.flush(); err != nil {
		return false, err
	}
	return !out.blocked(), nil
}

// detachFD duplicates c's socket descriptor for the loop. The caller closes
// c afterwards, which removes the original from the runtime's poller.
func detachFD(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errNotSocket
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var errno syscall.Errno
	if err := raw.Control(func(s uintptr) {
		r, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		fd, errno = int(r), e
	}); err != nil {
		return -1, err
	}
	if errno != 0 {
		return -1, os.NewSyscallError("fcntl", errno)
	}
	return fd, nil
}

// attachFD turns a loop descriptor back into a net.Conn in the runtime's
// poller, and closes fd.
func attachFD(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "relay")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	return newSockConn(c), nil
}
