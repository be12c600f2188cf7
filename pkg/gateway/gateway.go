// Package gateway runs the gatectl gateway: it wires the listeners to the
// policy follower, identity verification and the audit log, serves the
// HTTPS API, and shuts everything down in order.
package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	gatectl "github.com/gatectl/gatectl"
	"github.com/gatectl/gatectl/pkg/audit"
	"github.com/gatectl/gatectl/pkg/identity"
	"github.com/gatectl/gatectl/pkg/policy"
	"github.com/gatectl/gatectl/pkg/policy/repo"
	pgproxy "github.com/gatectl/gatectl/pkg/proxy/postgres"
	"github.com/gatectl/gatectl/pkg/sqlclass"
	"github.com/gatectl/gatectl/pkg/store/sqlite"
)

// Gateway is one running gateway process.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	audit  *audit.Log
	db     *sqlite.DB
	policy *repo.Follower[*policy.Policy]
	ident  *identity.Verifier
	dev    *identity.DevIssuer

	classifier *sqlclass.Cache
	secrets    secretRules

	tlsConfig *tls.Config
	apiURL    string
	// stopping is closed when the API server starts shutting down.
	stopping chan struct{}

	// refusals limits the audit events of unauthenticated callers; its
	// counts are written every refusalReportEvery until refusalsStop is
	// closed, and once more before refusalsDone is.
	refusals                   refusalLimiter
	refusalsStop, refusalsDone chan struct{}

	mu        sync.Mutex
	listeners []net.Listener
	servers   []shutdowner
}

type shutdowner interface{ Shutdown(context.Context) error }

// apiIdleTimeout is how long the API keeps a connection that has no
// request in progress.
var apiIdleTimeout = 60 * time.Second

// shutdownWait is how long a stopping gateway lets sessions finish.
const shutdownWait = 15 * time.Second

// postgresConns counts the open connections of the PostgreSQL listener.
func (g *Gateway) postgresConns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, s := range g.servers {
		if pg, ok := s.(*pgproxy.Server); ok {
			n += pg.Conns()
		}
	}
	return n
}

// Ready describes a started gateway. Run also writes it to
// DATA/gateway.json (removed at shutdown) so scripts and tests can find a
// gateway started on port 0.
type Ready struct {
	API      string `json:"api"`                // https URL
	Postgres string `json:"postgres,omitempty"` // address, empty when off
	DataDir  string `json:"data_dir"`
	CAFile   string `json:"ca,omitempty"` // --dev only
	Policy   string `json:"policy"`       // policy source, redacted (repo.RedactSource)
	PID      int    `json:"pid"`
}

// ReadyFile is the name of the ready file in the data dir.
const ReadyFile = "gateway.json"

// New checks the config and prepares the data dir; Run starts serving.
func New(cfg Config, logger *slog.Logger) (*Gateway, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = abs
	secrets, err := newSecretRules(cfg.Secrets.Env, cfg.Secrets.Files)
	if err != nil {
		return nil, err
	}
	return &Gateway{cfg: cfg, log: logger, secrets: secrets}, nil
}

// Run serves until ctx is done, then shuts down gracefully. ready, when
// non-nil, is called once every listener is up.
func (g *Gateway) Run(ctx context.Context, reload <-chan struct{}, ready func(Ready)) error {
	if err := g.start(ctx); err != nil {
		g.close()
		return err
	}
	// The ready file is world-readable and the CLI prints Policy: never the
	// credentials a source URL may hold.
	info := Ready{API: g.apiURL, DataDir: g.cfg.DataDir, Policy: repo.RedactSource(g.cfg.Policy.Source)}
	if g.cfg.Dev {
		info.CAFile = filepath.Join(g.cfg.DataDir, "ca.pem")
	}
	if g.cfg.Listen.Postgres != "off" {
		info.Postgres = g.cfg.Listen.Postgres
	}
	info.PID = os.Getpid()
	readyPath := filepath.Join(g.cfg.DataDir, ReadyFile)
	if b, err := json.Marshal(info); err == nil {
		if err := os.WriteFile(readyPath+".tmp", b, 0o644); err == nil {
			os.Rename(readyPath+".tmp", readyPath)
		}
	}
	defer os.Remove(readyPath)
	if ready != nil {
		ready(info)
	}
	for {
		select {
		case <-ctx.Done():
			g.log.Info("shutting down: new connections are refused; open PostgreSQL sessions may finish their work, then statements still running are cancelled",
				"sessions", g.postgresConns(), "wait", shutdownWait)
			sctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
			defer cancel()
			return g.shutdown(sctx)
		case <-reload:
			g.log.Info("reloading policy (SIGHUP)")
			g.policy.Reload()
		}
	}
}

func (g *Gateway) start(ctx context.Context) error {
	var err error
	g.db, err = sqlite.Open(filepath.Join(g.cfg.DataDir, "gatectl.db"))
	if err != nil {
		if f, werr := os.CreateTemp(g.cfg.DataDir, ".write-test-*"); werr != nil {
			return fmt.Errorf("open the audit store: the data directory %s is not writable by this user: %w; fix its permissions or pass --data-dir", g.cfg.DataDir, werr)
		} else {
			f.Close()
			os.Remove(f.Name())
		}
		return fmt.Errorf("open the audit store: %w", err)
	}
	g.audit, err = audit.Open(ctx, g.db.Audit(), audit.Options{Logger: g.log})
	if err != nil {
		return fmt.Errorf("open the audit log: %w", err)
	}
	if err := g.setupTLS(); err != nil {
		return err
	}
	apiLn, err := net.Listen("tcp", g.cfg.Listen.API)
	if err != nil {
		return fmt.Errorf("listen for the API on %s: %w", g.cfg.Listen.API, err)
	}
	g.track(apiLn)
	g.apiURL = "https://" + apiLn.Addr().String()

	httpClient := http.DefaultClient
	if g.cfg.Dev {
		g.dev, err = identity.NewDevIssuer(g.apiURL+"/dev", filepath.Join(g.cfg.DataDir, "dev-issuer-key.pem"))
		if err != nil {
			return fmt.Errorf("start the dev issuer: %w", err)
		}
		httpClient = &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: g.tlsConfig.RootCAs, MinVersion: tls.VersionTLS12}},
		}
		if g.cfg.Policy.Source == "" {
			src, err := g.devPolicyRepo()
			if err != nil {
				return err
			}
			g.cfg.Policy.Source = src
		}
	}
	g.ident = identity.NewVerifier(identity.Options{HTTPClient: httpClient, Dev: g.dev})

	g.policy = repo.NewFollower(repo.Options{
		Source:       g.cfg.Policy.Source,
		Branch:       g.cfg.Policy.Branch,
		Dir:          filepath.Join(g.cfg.DataDir, "policy.git"),
		Interval:     time.Duration(g.cfg.Policy.Poll),
		FetchTimeout: time.Duration(g.cfg.Policy.FetchTimeout),
		Logger:       g.log,
	}, loadPolicy, g.onPolicyEvent)
	// Set before the API serves, as its handlers and the refusal reports
	// read g.policy; started (fetching) once the API serves.
	every := refusalReportEvery
	g.refusalsStop, g.refusalsDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(g.refusalsDone)
		g.reportRefusalsEvery(every, g.refusalsStop)
	}()

	// The API must serve (the dev issuer's discovery) before the first
	// token is verified, and it answers 503 until a policy is live.
	api := &http.Server{
		Handler: g.apiHandler(),
		// Its own copy: ServeTLS adds the HTTP/2 protocols to it while the
		// PostgreSQL listener clones the gateway's.
		TLSConfig:         g.tlsConfig.Clone(),
		ReadHeaderTimeout: 10 * time.Second,
		// A kept-alive connection with no request is closed: anyone who
		// reaches the port could otherwise hold connections open for ever.
		// No read or write timeout: a followed audit stream lasts.
		IdleTimeout: apiIdleTimeout,
		ErrorLog:    slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	// Shutdown waits for requests to end: a followed audit stream ends
	// when it starts.
	g.stopping = make(chan struct{})
	api.RegisterOnShutdown(func() { close(g.stopping) })
	g.trackServer(api)
	go func() {
		// A start that fails later closes the listener: not an error.
		if err := api.ServeTLS(apiLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			g.log.Error("API server stopped", "err", err)
		}
	}()

	if err := g.policy.Start(ctx); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	return g.startPostgres()
}

// loadPolicy is the follower's loader: a commit goes live only if it loads
// and validates completely.
func loadPolicy(fsys fs.FS, c repo.Commit) (*policy.Policy, error) {
	p, err := policy.Load(fsys)
	if err != nil {
		return nil, err
	}
	p.Commit = c.Hash
	return p, nil
}

func (g *Gateway) onPolicyEvent(ev repo.Event) {
	e := audit.Event{Action: ev.Kind, PolicyCommit: ev.Commit.Hash, Decision: "ok"}
	// The follower has logged the outcome; this makes it an audit event.
	if ev.Err != nil {
		e.Decision = "error"
		e.Reason = ev.Err.Error()
	}
	if !ev.Replaced.IsZero() {
		// Allowed (a deliberate rollback is), but auditors must see it.
		e.Reason = fmt.Sprintf("history rewritten (rollback or force-push): %s does not descend from %s, the commit live before",
			ev.Commit.Short(), ev.Replaced.Short())
	}
	g.record(e)
	if p, c, ok := g.policy.Current(); ok && ev.Err == nil && c.Hash == ev.Commit.Hash && len(p.Masks) > 0 {
		// Say it loudly: a mask rule that is not applied is a gap an
		// operator must know about.
		g.log.Warn("this gateway does not apply [[mask]] rules yet: result values are returned unmasked", "mask_rules", len(p.Masks))
	}
}

// record hands an event to the batching audit writer.
func (g *Gateway) record(e audit.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if err := g.audit.Record(e); err != nil {
		g.log.Error("audit record failed", "action", e.Action, "err", err)
	}
}

// currentPolicy returns the live policy, or nil before the first one.
func (g *Gateway) currentPolicy() *policy.Policy {
	if g.policy == nil {
		return nil // not following a repository yet
	}
	p, _, ok := g.policy.Current()
	if !ok {
		return nil
	}
	return p
}

func (g *Gateway) setupTLS() error {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if g.cfg.Dev && g.cfg.TLS.Cert == "" {
		ca, err := loadOrCreateDevCA(g.cfg.DataDir)
		if err != nil {
			return err
		}
		cert, err := ca.serverCert()
		if err != nil {
			return err
		}
		cfg.Certificates = []tls.Certificate{cert}
		cfg.RootCAs = ca.pool()
	} else {
		cert, err := tls.LoadX509KeyPair(g.cfg.TLS.Cert, g.cfg.TLS.Key)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	g.tlsConfig = cfg
	return nil
}

// devPolicyRepo creates DATA/policy from the template on first use.
func (g *Gateway) devPolicyRepo() (string, error) {
	dir := filepath.Join(g.cfg.DataDir, "policy")
	if fileExists(filepath.Join(dir, ".git")) {
		return dir, nil
	}
	if _, err := repo.Init(dir, gatectl.PolicyTemplate(), "main"); err != nil {
		return "", fmt.Errorf("create the dev policy repo: %w", err)
	}
	g.log.Info("created a policy repo from the template", "dir", dir)
	return dir, nil
}

func (g *Gateway) track(ln net.Listener) {
	g.mu.Lock()
	g.listeners = append(g.listeners, ln)
	g.mu.Unlock()
}

func (g *Gateway) trackServer(s shutdowner) {
	g.mu.Lock()
	g.servers = append(g.servers, s)
	g.mu.Unlock()
}

// shutdown stops accepting, lets sessions finish until ctx is done, then
// flushes the audit log.
func (g *Gateway) shutdown(ctx context.Context) error {
	g.mu.Lock()
	servers := g.servers
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil {
				g.log.Warn("shutdown", "err", err)
			}
		}()
	}
	wg.Wait()
	return g.close()
}

func (g *Gateway) close() error {
	g.mu.Lock()
	for _, ln := range g.listeners {
		ln.Close()
	}
	g.mu.Unlock()
	var err error
	if g.refusalsStop != nil {
		// The last counts of refusals go in before the audit log closes.
		close(g.refusalsStop)
		<-g.refusalsDone
	}
	if g.audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = g.audit.Close(ctx)
		cancel()
	}
	if g.db != nil {
		if e := g.db.Close(); err == nil {
			err = e
		}
	}
	return err
}
