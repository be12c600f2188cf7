package postgres

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair is a connected loopback pair: a is wrapped by newSockConn, b is a
// plain net.Conn.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	a = newSockConn(d)
	if _, ok := a.(*sockConn); !ok {
		t.Fatalf("newSockConn(%T) = %T, want *sockConn", d, a)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestSockConnMovesBytesBothWays(t *testing.T) {
	a, b := tcpPair(t)
	// More than the socket buffers hold, so writes are partial and wait
	// for the reader.
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18)
	errc := make(chan error, 1)
	go func() {
		_, err := a.Write(want)
		errc <- err
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes written through sockConn differ from bytes read")
	}

	go func() {
		_, err := b.Write(want)
		errc <- err
		b.Close()
	}()
	got, err := io.ReadAll(a)
	if err != nil {
		t.Fatalf("ReadAll through sockConn: %v (want the data, then io.EOF)", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes read through sockConn differ from bytes written")
	}
}

func TestSockConnHonoursDeadlinesAndClose(t *testing.T) {
	a, _ := tcpPair(t)
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := a.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: got %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline: got %v, want a net.Error that is a timeout", err)
	}

	a.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 10))
		errc <- err
	}()
	// The reader is parked in the poller (or about to be); Close must
	// wake it either way.
	time.Sleep(10 * time.Millisecond)
	a.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read during Close: got %v, want net.ErrClosed", err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: got %v, want net.ErrClosed", err)
	}
}

func TestSockConnWriteToResetPeerFails(t *testing.T) {
	a, b := tcpPair(t)
	b.(*net.TCPConn).SetLinger(0)
	b.Close()
	var err error
	// The first writes may still succeed into the socket buffer; the reset
	// surfaces within a few.
	for i := 0; i < 100 && err == nil; i++ {
		_, err = a.Write(make([]byte, 64<<10))
	}
	if err == nil {
		t.Fatal("writes to a reset peer kept succeeding")
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("got %v, want a *net.OpError for write", err)
	}
}

func TestNewSockConnKeepsOtherConns(t *testing.T) {
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if got := newSockConn(p1); got != p1 {
		t.Fatalf("newSockConn(pipe) = %T, want the pipe itself", got)
	}
}

// TestSockConnConcurrentReaders has two goroutines read one sockConn at
// once: each byte arrives exactly once (run with -race to see the state
// they share stay guarded).
func TestSockConnConcurrentReaders(t *testing.T) {
	a, b := tcpPair(t)
	const n = 1 << 20
	go func() {
		b.Write(bytes.Repeat([]byte{1}, n))
		b.Close()
	}()
	counts := make(chan int, 2)
	for range 2 {
		go func() {
			total := 0
			buf := make([]byte, 1000)
			for {
				k, err := a.Read(buf)
				for _, c := range buf[:k] {
					total += int(c)
				}
				if err != nil {
					counts <- total
					return
				}
			}
		}()
	}
	if got := <-counts + <-counts; got != n {
		t.Fatalf("the two readers got %d bytes in all, want %d", got, n)
	}
}

// TestSockConnCloseWrite: lingerClose half-closes a client through
// CloseWrite, so the wrapper must keep it.
func TestSockConnCloseWrite(t *testing.T) {
	a, b := tcpPair(t)
	cw, ok := a.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T has no CloseWrite", a)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("peer read after CloseWrite: got %d, %v; want 0, io.EOF", n, err)
	}
}
