package postgres

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// fakeConn reads from a fixed input and discards writes.
type fakeConn struct {
	r io.Reader
}

func (c *fakeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (c *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func startupBytes(body string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...)
}

func FuzzStartup(f *testing.F) {
	f.Add(startupBytes("\x04\xd2\x16\x2f"))
	f.Add(append(startupBytes("\x04\xd2\x16\x30"), startupBytes("\x00\x03\x00\x00user\x00a\x00database\x00orders\x00\x00")...))
	f.Add(startupBytes("\x04\xd2\x16\x2e\x00\x00\x00\x01abcd"))
	f.Add(startupBytes("\x00\x03\x00\x02_pq_.x\x00y\x00\x00"))
	f.Add([]byte("\x16\x03\x01\x00\x05hello"))
	cert, _ := testCert(f)
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{alpnPostgres}}
	f.Fuzz(func(t *testing.T, in []byte) {
		if p, err := parseStartup(in); err == nil && p.kind == startupMessage && p.params == nil {
			t.Fatal("startup message without a parameter map")
		}
		readStartupPacket(bytes.NewReader(in))
		for _, c := range []*tls.Config{nil, conf} {
			n, err := negotiate(&fakeConn{r: bytes.NewReader(in)}, c)
			if err == nil && n.packet.kind != startupMessage && n.packet.kind != startupCancel {
				t.Fatalf("negotiate returned packet kind %d without error", n.packet.kind)
			}
		}
	})
}

// newFuzzSession is a session whose client sends in and whose target
// discards everything.
func newFuzzSession(in []byte) *session {
	ctx, cancel := context.WithCancel(context.Background())
	up := &upstreamConn{conn: &fakeConn{r: bytes.NewReader(nil)}}
	ss := &session{
		// A Server to hold the cancel request of a client gone mid-statement
		// (to an address that does not exist).
		srv:  &Server{},
		plan: &Session{ID: "fuzz", Target: "orders", Checker: testChecker{}},
		log:  discardLogger(), up: up, ctx: ctx, cancel: cancel,
		cache: newStmtCache(8),
	}
	ss.fe = newConduit(bufio.NewReaderSize(bytes.NewReader(in), relayBufferSize), bufio.NewWriter(io.Discard), 1<<20)
	return ss
}

func FuzzFrontendMessages(f *testing.F) {
	msg := func(typ byte, body string) []byte {
		return append(append([]byte{typ}, binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))...), body...)
	}
	f.Add(msg('Q', "SELECT 1\x00"))
	f.Add(msg('Q', "DROP TABLE items\x00"))
	f.Add(bytes.Join([][]byte{
		msg('P', "s1\x00DELETE FROM items WHERE id = $1\x00\x00\x01\x00\x00\x00\x17"),
		msg('B', "\x00s1\x00\x00\x00\x00\x01\x00\x00\x00\x017\x00\x00"),
		msg('E', "\x00\x00\x00\x00\x00"),
		msg('S', ""),
	}, nil))
	f.Add(msg('F', "\x00\x00\x07\xea\x00\x00\x00\x00\x00\x00"))
	f.Add(msg('C', "Ss1\x00"))
	f.Add(msg('d', "1\tone\n"))
	f.Add(msg('X', ""))
	f.Add(append(msg('Q', "SELECT 1\x00"), msg('y', "abc\x00")...))
	// The unnamed statement, which the statement cache keeps.
	unnamed := bytes.Join([][]byte{
		msg('P', "\x00SELECT $1\x00\x00\x01\x00\x00\x00\x17"),
		msg('D', "S\x00"),
		msg('B', "\x00\x00\x00\x00\x00\x01\x00\x00\x00\x017\x00\x00"),
		msg('E', "\x00\x00\x00\x00\x00"),
		msg('S', ""),
	}, nil)
	f.Add(unnamed)
	f.Add(bytes.Join([][]byte{unnamed, msg('Q', "SET TimeZone TO 'UTC'\x00"), unnamed, msg('Q', "DO $$ BEGIN END $$\x00"), msg('B', "\x00\x00\x00\x00\x00\x00")}, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		ss := newFuzzSession(in)
		ss.clientLoop(nil)
		if ss.reason == "" {
			t.Fatal("client loop returned without a reason")
		}
	})
}

func FuzzTargetMessages(f *testing.F) {
	msg := func(typ byte, body string) []byte {
		return append(append([]byte{typ}, binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))...), body...)
	}
	f.Add(bytes.Join([][]byte{msg('2', ""), msg('C', "SELECT 1\x00"), msg('Z', "I")}, nil))
	f.Add(bytes.Join([][]byte{msg('E', "SERROR\x00C42501\x00Mno\x00\x00"), msg('Z', "E")}, nil))
	f.Add(bytes.Join([][]byte{msg('3', ""), msg('3', ""), msg('1', ""), msg('t', "\x00\x00"), msg('n', ""), msg('E', "SERROR\x00C26000\x00Mgone\x00\x00"), msg('Z', "I")}, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		ss := newFuzzSession(nil)
		cached := &cachedStmt{name: cachePrefix + "1"}
		ss.queue.push(entry{kind: entryParse, closeFirst: true, closeMore: 1, cached: cached})
		ss.queue.push(entry{kind: entryDescribe, cached: cached})
		ss.queue.push(entry{kind: entryBind, cached: cached})
		ss.queue.push(entry{kind: entryRefusedParse})
		ss.queue.push(entry{kind: entryBind})
		ss.queue.push(entry{kind: entryExecute})
		ss.queue.push(entry{kind: entrySync})
		ss.be = newConduit(bufio.NewReader(bytes.NewReader(in)), bufio.NewWriter(io.Discard), 0)
		for {
			typ, n, err := ss.be.next()
			if err == nil {
				err = ss.handleTargetMessage(typ, n)
			}
			if err != nil {
				return
			}
		}
	})
}
