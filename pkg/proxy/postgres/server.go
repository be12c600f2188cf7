package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxMessageSize is the client message size limit when
// Server.MaxMessageSize is zero.
const DefaultMaxMessageSize = 32 << 20

// DefaultMaxStartups is Server.MaxStartups when it is 0.
const DefaultMaxStartups = 256

// refuseTimeout bounds a connection refused for MaxStartups.
const refuseTimeout = 5 * time.Second

// startupTimeout bounds the phase from accept to a logged-in session.
const startupTimeout = time.Minute

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("postgres gateway listener closed")

// Server accepts PostgreSQL clients and relays their sessions to targets.
// Set the fields before calling Serve and do not change them afterwards.
type Server struct {
	// Auth decides who a client is and where its session goes. Required.
	Auth Authenticator
	// TLSConfig is the listener's certificate; nil offers no TLS, so only
	// clients AllowPlaintext accepts can connect.
	TLSConfig *tls.Config
	// AllowPlaintext reports whether a client at addr may log in without
	// TLS (the gateway allows loopback). nil refuses plaintext to everyone.
	AllowPlaintext func(net.Addr) bool
	// MaxMessageSize is the largest client message accepted, in bytes
	// including the 5-byte header; a larger message ends the session.
	// 0 means DefaultMaxMessageSize.
	MaxMessageSize int
	// Logger receives structured logs; nil means slog.Default(). Tokens
	// and target credentials are never logged.
	Logger *slog.Logger
	// MaxStartups bounds the connections between accept and login, each
	// of which holds buffers and a goroutine for up to a minute; more are
	// refused at once (FATAL 53300), and so are more than half of it from
	// one IP address. 0 means DefaultMaxStartups.
	MaxStartups int

	initOnce sync.Once
	starting atomic.Int64
	// startingFrom counts the connections logging in by source address
	// (see sourceKey); one address may hold at most half of MaxStartups.
	startMu      sync.Mutex
	startingFrom map[string]int
	tlsConf      *tls.Config

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	conns     map[*tracked]struct{}
	cancelMap map[cancelKey]*session
	idle      chan struct{} // closed when conns becomes empty during shutdown
	wg        sync.WaitGroup
}

// tracked is an accepted connection; stop forces it closed.
type tracked struct {
	raw  net.Conn
	mu   sync.Mutex
	sess *session
}

func (t *tracked) stop() {
	t.mu.Lock()
	sess := t.sess
	t.mu.Unlock()
	if sess != nil {
		sess.shutdown()
		return
	}
	t.raw.Close()
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.TLSConfig != nil {
			s.tlsConf = s.TLSConfig.Clone()
			s.tlsConf.NextProtos = []string{alpnPostgres}
		}
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*tracked]struct{})
		s.cancelMap = make(map[cancelKey]*session)
	})
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) maxBody() int {
	if s.MaxMessageSize > 0 {
		return max(s.MaxMessageSize-5, 0)
	}
	return DefaultMaxMessageSize - 5
}

// Serve accepts connections on ln until Shutdown, and returns
// ErrServerClosed then. Each connection is served on its own goroutine.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	if s.Auth == nil {
		return errors.New("postgres gateway: Server.Auth is not set")
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("postgres gateway accept failed; retrying", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept postgres clients: %w", err)
		}
		backoff = 0
		t := &tracked{raw: conn}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			conn.Close()
			return ErrServerClosed
		}
		s.conns[t] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer s.forget(t)
			s.serveConn(t)
		}()
	}
}

func (s *Server) forget(t *tracked) {
	s.mu.Lock()
	delete(s.conns, t)
	if s.closing && len(s.conns) == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
}

// Conns returns how many client connections are open, logged in or not.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown stops accepting, lets sessions run until they end or ctx is done,
// then closes the remaining ones (their clients get FATAL 57P01) and waits
// for them. It returns ctx's error when sessions had to be closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	idle := make(chan struct{})
	if len(s.conns) == 0 {
		close(idle)
	} else {
		s.idle = idle
	}
	s.mu.Unlock()

	var err error
	select {
	case <-idle:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for t := range s.conns {
			t.stop()
		}
		s.mu.Unlock()
	}
	s.wg.Wait()
	return err
}
