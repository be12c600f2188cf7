package connect

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
)

// TestStopDoesNotWaitForSilentClients: a local connection that sends
// nothing (any user of the machine can open one) must not keep the
// listener from stopping once the client gatectl ran has exited.
func TestStopDoesNotWaitForSilentClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &localProxy{f: &cmdutil.Factory{IO: cmdutil.Test(nil, nil, nil)}, password: "pw"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.serve(ctx, ln); close(done) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // accepted, waiting for a startup message
	ln.Close()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the listener still waits for a silent connection after it stopped")
	}
}

// TestUnreadablePasswordIsRefused: a local client that answers the
// password request with something unreadable (here a PasswordMessage
// announcing 1 GiB, over the bound) is closed on; nothing reaches the
// gateway, and the listener does not wait for the gigabyte.
func TestUnreadablePasswordIsRefused(t *testing.T) {
	gw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	dialed := make(chan struct{}, 1)
	go func() {
		if c, err := gw.Accept(); err == nil {
			dialed <- struct{}{}
			c.Close()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := &cmdutil.Factory{IO: cmdutil.Test(nil, nil, nil), Getenv: func(k string) string {
		if k == "GATECTL_TOKEN" {
			return "caller-token"
		}
		return ""
	}}
	p := &localProxy{f: f, gateway: gw.Addr().String(), password: "pw"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.serve(ctx, ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	startup := []byte{0, 0, 0, 0, 0, 3, 0, 0}
	startup = append(startup, "user\x00u\x00database\x00d\x00\x00"...)
	binary.BigEndian.PutUint32(startup, uint32(len(startup)))
	c.Write(startup)
	c.Write([]byte{'p', 0x40, 0, 0, 0})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the listener did not close the connection: %v (read %q)", err, got)
	}
	if len(got) == 0 || got[0] != 'R' {
		t.Errorf("got %q, want only the password request", got)
	}
	select {
	case <-dialed:
		t.Fatal("a client without the password got through to the gateway")
	case <-time.After(200 * time.Millisecond):
	}
}
