package postgres

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// Request codes of the packets a client may send before the startup message.
const (
	codeCancelRequest = 80877102
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104

	// maxStartupPacket is PostgreSQL's own MAX_STARTUP_PACKET_LENGTH.
	maxStartupPacket = 10000
	// maxNegotiations bounds SSL/GSS requests before the startup message.
	maxNegotiations = 3
	// alpnPostgres is the ALPN protocol a direct-TLS client must offer.
	alpnPostgres = "postgresql"
)

type startupKind uint8

const (
	startupMessage startupKind = iota + 1
	startupSSLRequest
	startupGSSENCRequest
	startupCancel
)

// startupPacket is a decoded pre-authentication packet.
type startupPacket struct {
	kind startupKind
	// minor is the protocol minor version of a startup message (major is 3).
	minor uint16
	// params holds the startup parameters, except "_pq_." protocol options,
	// which land in options.
	params  map[string]string
	options []string
	// cancelPID and cancelKey are set for a CancelRequest.
	cancelPID uint32
	cancelKey []byte
}

// readStartupPacket reads one length-prefixed startup packet from r without
// reading past it, so that a TLS handshake can follow on the same connection.
func readStartupPacket(r io.Reader) (startupPacket, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return startupPacket{}, fmt.Errorf("read startup packet length: %w", err)
	}
	return readStartupBody(r, hdr)
}

// readStartupBody reads the rest of a startup packet whose 4-byte length is hdr.
func readStartupBody(r io.Reader, hdr [4]byte) (startupPacket, error) {
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n < 8 || n > maxStartupPacket {
		return startupPacket{}, fmt.Errorf("invalid startup packet length %d", n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return startupPacket{}, fmt.Errorf("read startup packet: %w", err)
	}
	return parseStartup(body)
}

// parseStartup decodes a startup packet body (everything after the length).
func parseStartup(body []byte) (startupPacket, error) {
	if len(body) < 4 {
		return startupPacket{}, errors.New("startup packet too short")
	}
	code := binary.BigEndian.Uint32(body)
	rest := body[4:]
	switch code {
	case codeSSLRequest, codeGSSENCRequest:
		if len(rest) != 0 {
			return startupPacket{}, errors.New("encryption request with a body")
		}
		if code == codeSSLRequest {
			return startupPacket{kind: startupSSLRequest}, nil
		}
		return startupPacket{kind: startupGSSENCRequest}, nil
	case codeCancelRequest:
		// The key is 4 bytes in protocol 3.0 and up to 256 bytes in 3.2.
		if len(rest) < 8 || len(rest) > 4+256 {
			return startupPacket{}, errors.New("invalid cancel request length")
		}
		return startupPacket{
			kind:      startupCancel,
			cancelPID: binary.BigEndian.Uint32(rest),
			cancelKey: bytes.Clone(rest[4:]),
		}, nil
	}
	major, minor := uint16(code>>16), uint16(code)
	if major != 3 {
		return startupPacket{}, fmt.Errorf("unsupported protocol version %d.%d", major, minor)
	}
	p := startupPacket{kind: startupMessage, minor: minor, params: make(map[string]string)}
	for {
		key, r, ok := cutCString(rest)
		if !ok {
			return startupPacket{}, errors.New("startup parameters not terminated")
		}
		if key == "" {
			if len(r) != 0 {
				return startupPacket{}, errors.New("data after startup parameters")
			}
			return p, nil
		}
		val, r2, ok := cutCString(r)
		if !ok {
			return startupPacket{}, fmt.Errorf("startup parameter %q has no value", key)
		}
		if strings.HasPrefix(key, "_pq_.") {
			p.options = append(p.options, key)
		} else {
			p.params[key] = val
		}
		rest = r2
	}
}

// cutCString splits a NUL-terminated string off b.
func cutCString(b []byte) (s string, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}

// negotiated is the result of the pre-startup phase.
type negotiated struct {
	conn   net.Conn // the raw connection, or TLS over it
	tls    bool
	packet startupPacket
}

// negotiate runs the pre-startup phase on the raw connection: SSLRequest,
// GSSENCRequest and direct TLS, until a startup message or a cancel request
// arrives. It reads exactly one packet at a time and never buffers ahead, so
// plaintext a client pipelines before the TLS handshake is fed to the
// handshake (and fails it) instead of being taken as post-handshake input.
// tlsConf nil means TLS is not offered.
func negotiate(raw net.Conn, tlsConf *tls.Config) (negotiated, error) {
	n := negotiated{conn: raw}
	for i := 0; i < maxNegotiations; i++ {
		var hdr [4]byte
		if _, err := io.ReadFull(n.conn, hdr[:]); err != nil {
			return n, fmt.Errorf("read startup packet length: %w", err)
		}
		if hdr[0] == 0x16 && !n.tls && i == 0 {
			// A TLS ClientHello: direct TLS (PostgreSQL 17's sslnegotiation=direct).
			if tlsConf == nil {
				return n, errors.New("direct TLS attempted but the listener has no TLS certificate")
			}
			tc := tls.Server(&prefixConn{Conn: raw, prefix: hdr[:]}, tlsConf)
			if err := tc.Handshake(); err != nil {
				return n, fmt.Errorf("direct TLS handshake: %w", err)
			}
			// The refusal below is written inside TLS, where the client can
			// read it.
			n.conn, n.tls = tc, true
			// Fail closed: PostgreSQL requires the ALPN protocol for direct TLS.
			if tc.ConnectionState().NegotiatedProtocol != alpnPostgres {
				return n, errors.New("direct TLS without ALPN protocol \"postgresql\"")
			}
			continue
		}
		p, err := readStartupBody(n.conn, hdr)
		if err != nil {
			return n, err
		}
		switch p.kind {
		case startupSSLRequest:
			if n.tls {
				return n, errors.New("SSLRequest inside TLS")
			}
			if tlsConf == nil {
				if _, err := n.conn.Write([]byte{'N'}); err != nil {
					return n, fmt.Errorf("answer SSLRequest: %w", err)
				}
				continue
			}
			if _, err := raw.Write([]byte{'S'}); err != nil {
				return n, fmt.Errorf("answer SSLRequest: %w", err)
			}
			tc := tls.Server(raw, tlsConf)
			if err := tc.Handshake(); err != nil {
				return n, fmt.Errorf("TLS handshake: %w", err)
			}
			n.conn, n.tls = tc, true
		case startupGSSENCRequest:
			if n.tls {
				return n, errors.New("GSSENCRequest inside TLS")
			}
			if _, err := n.conn.Write([]byte{'N'}); err != nil {
				return n, fmt.Errorf("answer GSSENCRequest: %w", err)
			}
		default:
			n.packet = p
			return n, nil
		}
	}
	return n, errors.New("too many encryption requests before the startup message")
}

// prefixConn replays bytes already read from Conn before reading more.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
