package client

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
)

// TestPostgresConnReadsTheErrorBeforeTheReset: a server that answers the
// start of an oversized message with an error and closes while the rest
// is still being sent resets the connection; the error it sent must still
// be read, and only then the reset reported.
func TestPostgresConnReadsTheErrorBeforeTheReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	answer := []byte("E\x00\x00\x00\x26SFATAL\x00C54000\x00Mmessage too large\x00\x00")
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.ReadFull(c, make([]byte, 5))
		c.Write(answer)
		// Closing with the rest of the message unread resets the
		// connection.
		c.Close()
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn := PostgresConn(raw)
	defer conn.Close()

	// More than the socket buffers of both ends hold.
	if n, err := conn.Write(make([]byte, 64<<20)); err != nil {
		t.Fatalf("write: %d bytes, %v; want the reset kept for after the server's answer is read", n, err)
	}
	if _, err := conn.Write([]byte("X\x00\x00\x00\x04")); err != nil {
		t.Errorf("a write after the reset: %v, want it dropped", err)
	}
	got, err := io.ReadAll(conn)
	if !bytes.Equal(got, answer) {
		t.Errorf("read %q, want the server's answer %q", got, answer)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("after the answer: %v, want the write's reset", err)
	}
}

// TestPostgresConnPassesOtherWriteErrors: only a reset is put off; a
// write on a closed connection fails at once.
func TestPostgresConnPassesOtherWriteErrors(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	conn := PostgresConn(a)
	conn.Close()
	if _, err := conn.Write([]byte("Q")); err == nil {
		t.Error("a write on a closed connection succeeded")
	}
}
