package postgres

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"syscall"
	"testing"
)

// pumpMaxBody is the fuzzed sessions' size limit: above the relay buffer,
// so that both the loop's hand-back of a large message and the limit are
// reachable with small inputs.
const pumpMaxBody = relayBufferSize + 8<<10

// relayOutcome is what a client-side relay did with one input.
type relayOutcome struct {
	// sent is what reached the target; produced adds what the handlers
	// wrote that was still buffered when the session ended.
	sent, produced []byte
	reason         string
	statements     int64
	refused        int64
}

// newPumpSession is a session with a fresh client conduit over r and w.
func newPumpSession(r io.Reader, w io.Writer) *session {
	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{
		srv:  &Server{}, // holds the cancel request of a client gone mid-statement
		plan: &Session{ID: "fuzz", Target: "orders", Checker: testChecker{}},
		log:  discardLogger(), ctx: ctx, cancel: cancel,
	}
	ss.fe = newConduit(bufio.NewReaderSize(r, relayBufferSize), bufio.NewWriterSize(w, relayBufferSize), pumpMaxBody)
	return ss
}

// relayOnGoroutines relays in through clientLoop alone, as a TLS session.
func relayOnGoroutines(in []byte) relayOutcome {
	var out bytes.Buffer
	ss := newPumpSession(bytes.NewReader(in), &out)
	ss.up = &upstreamConn{conn: &fakeConn{r: bytes.NewReader(nil)}}
	ss.clientLoop(nil)
	sent := bytes.Clone(out.Bytes())
	ss.fe.w.Flush()
	return relayOutcome{sent: sent, produced: out.Bytes(), reason: ss.reason, statements: ss.statements.Load(), refused: ss.refused.Load()}
}

// relayThroughPump relays in the way a plaintext session is relayed: the
// client writes in in pieces of the given sizes over a socket; after each,
// pump runs as the event loop would run it (level-triggered: again while it
// reads something) until it hands the session back; the rest goes through
// clientLoop after the hand-back, as in session.run.
func relayThroughPump(t *testing.T, in []byte, pieces []int) relayOutcome {
	t.Helper()
	client, clientPeer := socketPair(t) // clientPeer: the test's end
	target, targetPeer := socketPair(t) // targetPeer: drained below
	peerOut := os.NewFile(uintptr(targetPeer), "target-peer")
	drained := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peerOut)
		peerOut.Close()
		drained <- b
	}()
	peerIn := os.NewFile(uintptr(clientPeer), "client-peer")

	crc, trc := &relayConn{fd: client}, &relayConn{fd: target}
	ss := newPumpSession(crc, trc)
	ss.clientIn = crc
	var feErr error
	ok := true
	for len(in) > 0 && ok {
		n := min(len(in), pieces[0])
		pieces = append(pieces[1:], pieces[0])
		if _, err := peerIn.Write(in[:n]); err != nil {
			t.Fatal(err)
		}
		in = in[n:]
		if len(in) == 0 {
			peerIn.Close()
		}
		for ok {
			before := crc.reads
			ok, feErr = pump(ss.fe, trc, ss.handleClientMessage)
			if ok && crc.reads == before && len(in) > 0 {
				break // EAGAIN: wait for the next piece
			}
		}
	}
	if ok {
		// Everything was written and read: only the end of input is left.
		peerIn.Close()
		ok, feErr = pump(ss.fe, trc, ss.handleClientMessage)
		if ok {
			t.Fatal("pump did not hand back at the end of input")
		}
	}
	// Hand back, as relayInLoop does.
	cc, err := attachFD(client)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := attachFD(target)
	if err != nil {
		t.Fatal(err)
	}
	crc.fd, trc.fd = -1, -1
	crc.conn, trc.conn = cc, tc
	ss.up = &upstreamConn{conn: tc}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		peerIn.Write(in)
		peerIn.Close()
	}()
	if err := trc.flushStash(); err != nil && feErr == nil {
		feErr = &writeError{err}
	}
	ss.clientLoop(feErr)
	cc.Close()
	<-wrote
	sent := <-drained
	return relayOutcome{sent: sent, reason: ss.reason, statements: ss.statements.Load(), refused: ss.refused.Load()}
}

// socketPair returns a connected Unix stream pair: a non-blocking end for
// the relay and a blocking end for the test.
func socketPair(t *testing.T) (relay, peer int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

// checkPumpMatchesGoroutines relays in both ways and compares.
func checkPumpMatchesGoroutines(t *testing.T, in []byte, pieces []int) {
	t.Helper()
	want := relayOnGoroutines(in)
	got := relayThroughPump(t, in, pieces)
	if got.reason != want.reason || got.statements != want.statements || got.refused != want.refused {
		t.Fatalf("event loop: reason %q, %d statements, %d refused; goroutines: %q, %d, %d",
			got.reason, got.statements, got.refused, want.reason, want.statements, want.refused)
	}
	// The loop may flush more often than the goroutines, so it may have
	// sent more of what the handlers produced before the session ended,
	// but never other bytes.
	if !bytes.HasPrefix(got.sent, want.sent) || !bytes.HasPrefix(want.produced, got.sent) {
		t.Fatalf("event loop sent %d bytes %.64q…; goroutines sent %d bytes %.64q… of %d produced",
			len(got.sent), got.sent, len(want.sent), want.sent, len(want.produced))
	}
}

// pieceSizes turns fuzzer bytes into write sizes of 1 to 65026 bytes.
func pieceSizes(b []byte) []int {
	if len(b) == 0 {
		return []int{1 << 20}
	}
	sizes := make([]int, len(b))
	for i, c := range b {
		sizes[i] = 1 + int(c)*int(c)
	}
	return sizes
}

func wireMsg(typ byte, body string) []byte {
	return append(append([]byte{typ}, binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))...), body...)
}

// FuzzLoopPump checks that relaying a client's byte stream on the event
// loop, split into writes at arbitrary points, forwards what the goroutine
// relay forwards and ends the same way.
func FuzzLoopPump(f *testing.F) {
	batch := bytes.Join([][]byte{
		wireMsg('Q', "SELECT 1\x00"),
		wireMsg('Q', "DROP TABLE items\x00"),
		wireMsg('P', "s1\x00DELETE FROM items WHERE id = $1\x00\x00\x01\x00\x00\x00\x17"),
		wireMsg('B', "\x00s1\x00\x00\x00\x00\x01\x00\x00\x00\x017\x00\x00"),
		wireMsg('E', "\x00\x00\x00\x00\x00"),
		wireMsg('S', ""),
	}, nil)
	f.Add(batch, []byte{0, 3, 1})
	f.Add(append(bytes.Clone(batch), wireMsg('X', "")...), []byte{})
	f.Add(append(wireMsg('Q', string(bytes.Repeat([]byte("x"), relayBufferSize))+"\x00"), batch...), []byte{2, 200})
	f.Add(append(bytes.Clone(batch), wireMsg('d', string(bytes.Repeat([]byte("y"), pumpMaxBody+1)))...), []byte{255})
	f.Add(append(bytes.Clone(batch), 'Q', 0, 0, 0, 2), []byte{5})
	f.Fuzz(func(t *testing.T, in []byte, cuts []byte) {
		if len(in) > 96<<10 {
			return // more than the socket buffers are sure to hold
		}
		checkPumpMatchesGoroutines(t, in, pieceSizes(cuts))
	})
}
