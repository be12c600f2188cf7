package postgres

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// relayBufferSize is the read and write buffer size per direction. Messages
// that fit are forwarded straight out of the read buffer with no copy.
const relayBufferSize = 32 * 1024

// conduit moves whole protocol messages from one peer to the other. Writes
// are coalesced: the output is flushed only before a read that would block,
// so a pipelined batch or a result set goes out in as few writes as the
// input arrived in.
type conduit struct {
	r *bufio.Reader
	w *bufio.Writer
	// maxBody is the largest message body accepted; 0 means no limit.
	maxBody int
	// bytes counts bytes read from r.
	bytes int64
	// discard is how much of r's buffer the current message still occupies.
	discard int
	// buf holds a message that does not fit in r's buffer.
	buf []byte
}

func newConduit(r *bufio.Reader, w *bufio.Writer, maxBody int) *conduit {
	return &conduit{r: r, w: w, maxBody: maxBody}
}

// tooLargeError reports a message over the conduit's limit.
type tooLargeError struct{ size, limit int }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("message of %d bytes exceeds the gateway's limit of %d bytes", e.size, e.limit)
}

// writeError is a failure writing to the conduit's output peer, as opposed
// to reading from its input peer.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// flush writes out what is buffered for the output peer.
func (c *conduit) flush() error {
	if err := c.w.Flush(); err != nil {
		return &writeError{err}
	}
	return nil
}

// fill makes n bytes available in r's buffer, flushing the output first when
// that needs a read: the peer may be waiting for what is buffered.
func (c *conduit) fill(n int) ([]byte, error) {
	if c.r.Buffered() < n {
		if err := c.flush(); err != nil {
			return nil, err
		}
	}
	return c.r.Peek(n)
}

// next reads the header of the next message: its type and body length.
func (c *conduit) next() (byte, int, error) {
	if c.discard > 0 {
		c.r.Discard(c.discard)
		c.discard = 0
	}
	hdr, err := c.fill(5)
	if err != nil {
		return 0, 0, err
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[1:]))) - 4
	var bad error
	switch {
	case n < 0:
		bad = &protocolError{fmt.Sprintf("invalid message length %d for message type %q", n+4, hdr[0])}
	case c.maxBody > 0 && n > c.maxBody:
		bad = &tooLargeError{size: n + 5, limit: c.maxBody + 5}
	}
	if bad != nil {
		// The session ends here, but what came before this message goes
		// out first, as PostgreSQL runs what it read before a message it
		// cannot take (and as the event loop does). It ends anyway, so
		// a failed write changes nothing.
		c.flush()
		return 0, 0, bad
	}
	c.bytes += int64(n) + 5
	return hdr[0], n, nil
}

// whole returns the current message (header and body). The slice is valid
// until the next call to next.
func (c *conduit) whole(n int) ([]byte, error) {
	size := n + 5
	if size <= c.r.Size() {
		msg, err := c.fill(size)
		if err != nil {
			return nil, err
		}
		c.discard = size
		return msg, nil
	}
	if cap(c.buf) < size {
		c.buf = make([]byte, size)
	}
	c.buf = c.buf[:size]
	if err := c.flush(); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(c.r, c.buf); err != nil {
		return nil, err
	}
	return c.buf, nil
}

// peekWhole returns the current message if it fits in the read buffer, or
// nil (and no error) when it does not; the caller then forwards it unread.
func (c *conduit) peekWhole(n int) ([]byte, error) {
	if n+5 > c.r.Size() {
		return nil, nil
	}
	return c.whole(n)
}

// forward copies the current message to the output unchanged.
func (c *conduit) forward(n int) error {
	size := n + 5
	if size <= c.r.Size() {
		msg, err := c.fill(size)
		if err != nil {
			return err
		}
		c.discard = size
		return c.write(msg)
	}
	// Larger than the buffer: stream it through in buffer-sized pieces.
	for size > 0 {
		chunk, err := c.fill(min(size, c.r.Size()))
		if err != nil {
			return err
		}
		if err := c.write(chunk); err != nil {
			return err
		}
		c.r.Discard(len(chunk))
		size -= len(chunk)
	}
	return nil
}

// skip drops the current message without buffering it whole.
func (c *conduit) skip(n int) error {
	size := n + 5
	for size > 0 {
		chunk, err := c.fill(min(size, c.r.Size()))
		if err != nil {
			return err
		}
		c.r.Discard(len(chunk))
		size -= len(chunk)
	}
	return nil
}

// write sends bytes to the output peer.
func (c *conduit) write(b []byte) error {
	if _, err := c.w.Write(b); err != nil {
		return &writeError{err}
	}
	return nil
}
