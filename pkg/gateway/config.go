package gateway

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	pgproxy "github.com/gatectl/gatectl/pkg/proxy/postgres"
)

// Config is gateway.toml; flags of `gatectl gateway` override it.
type Config struct {
	// Dev runs the embedded OIDC issuer and a self-signed CA, and creates a
	// policy repo from the template when no policy source is given. It
	// refuses any listener that is not on loopback.
	Dev     bool   `toml:"dev"`
	DataDir string `toml:"data_dir"`
	Listen  struct {
		API      string `toml:"api"`
		Postgres string `toml:"postgres"`
	} `toml:"listen"`
	TLS struct {
		Cert string `toml:"cert"`
		Key  string `toml:"key"`
	} `toml:"tls"`
	Policy struct {
		Source string   `toml:"source"` // path, file://, https:// or ssh URL
		Branch string   `toml:"branch"`
		Poll   duration `toml:"poll"`
		// FetchTimeout bounds one fetch of the source; 0 means
		// repo.DefaultFetchTimeout.
		FetchTimeout duration `toml:"fetch_timeout"`
	} `toml:"policy"`
	// Secrets says which secrets a policy's targets may name (see
	// secretRules): nil lists take the defaults.
	Secrets struct {
		Env   []string `toml:"env"`
		Files []string `toml:"files"`
	} `toml:"secrets"`
	Postgres struct {
		// MaxStartups bounds the PostgreSQL connections between accept
		// and login; more are refused at once (FATAL 53300). 0 means
		// pgproxy.DefaultMaxStartups.
		MaxStartups int `toml:"max_startups"`
		// AllowCleartextPassword lets the gateway send a target's password
		// in clear over verified TLS (tls = "verify-full") when the target
		// asks for it (pg_hba.conf "password", LDAP, PAM, RADIUS). Off by
		// default: the policy chooses the target's address, and whoever
		// answers there would read the password. Never in other modes.
		AllowCleartextPassword bool `toml:"allow_cleartext_password"`
		// StatementCache is how many texts of each session's unnamed
		// statement the gateway keeps prepared on its target, so that a
		// repeated query is parsed and planned once; 0 turns it off, and
		// unset means DefaultStatementCache. Prepared statements may run
		// with a generic plan after five runs (plan_cache_mode).
		StatementCache *int `toml:"statement_cache"`
	} `toml:"postgres"`
}

type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a positive duration like \"30s\"", b)
	}
	*d = duration(v)
	return nil
}

// Defaults of DESIGN.md §6.
const (
	DefaultAPI      = "127.0.0.1:8443"
	DefaultPostgres = "127.0.0.1:15432"
	DefaultDataDir  = ".gatectl"
)

// LoadConfig reads a gateway.toml strictly: unknown keys are errors.
func LoadConfig(path string) (*Config, error) {
	var c Config
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%s:%d: %s", path, perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("%s: unknown key %s (valid: dev, data_dir, listen.api, listen.postgres, tls.cert, tls.key, policy.source, policy.branch, policy.poll, policy.fetch_timeout, postgres.max_startups, postgres.allow_cleartext_password, postgres.statement_cache, secrets.env, secrets.files)", path, strings.Join(keys, ", "))
	}
	return &c, nil
}

// DefaultStatementCache is postgres.statement_cache when it is unset:
// enough for the queries of most applications, while each statement holds
// a plan in its session's backend on the target.
const DefaultStatementCache = 100

// maxStatementCache bounds postgres.statement_cache.
const maxStatementCache = 10000

// statementCache is postgres.statement_cache, or its default.
func (c *Config) statementCache() int {
	if c.Postgres.StatementCache == nil {
		return DefaultStatementCache
	}
	return *c.Postgres.StatementCache
}

// fill applies defaults and checks the config for what cannot work.
func (c *Config) fill() error {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Listen.API == "" {
		c.Listen.API = DefaultAPI
	}
	if c.Listen.Postgres == "" {
		c.Listen.Postgres = DefaultPostgres
	}
	if c.Secrets.Env == nil {
		c.Secrets.Env = DefaultSecretEnv
	}
	if c.Secrets.Files == nil {
		c.Secrets.Files = DefaultSecretFiles
	}
	if _, err := newSecretRules(c.Secrets.Env, c.Secrets.Files); err != nil {
		return err
	}
	if n := c.Postgres.StatementCache; n != nil && (*n < 0 || *n > maxStatementCache) {
		return fmt.Errorf("postgres.statement_cache = %d: want 0 (off) to %d statements per session (default %d)", *n, maxStatementCache, DefaultStatementCache)
	}
	if c.Postgres.MaxStartups < 0 || c.Postgres.MaxStartups > 65536 {
		return fmt.Errorf("postgres.max_startups = %d: want 1 to 65536 connections logging in at once (default %d)", c.Postgres.MaxStartups, pgproxy.DefaultMaxStartups)
	}
	if c.Policy.Branch == "" {
		c.Policy.Branch = "main"
	}
	if c.Policy.Poll == 0 {
		c.Policy.Poll = duration(30 * time.Second)
		if c.Dev {
			c.Policy.Poll = duration(2 * time.Second)
		}
	}
	if c.Dev {
		// Fail closed: the dev issuer mints any identity, so a dev gateway
		// must not be reachable from another machine.
		for name, addr := range map[string]string{"api": c.Listen.API, "postgres": c.Listen.Postgres} {
			if addr == "" || addr == "off" {
				continue
			}
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return fmt.Errorf("--listen-%s %q is not an address: want HOST:PORT, such as 127.0.0.1:8443", name, addr)
			}
			if !isLoopback(addr) {
				return fmt.Errorf("--dev refuses to listen on %s (%s): its issuer mints any identity; use a 127.0.0.1 address", addr, name)
			}
		}
	} else {
		if c.TLS.Cert == "" || c.TLS.Key == "" {
			return errors.New("no TLS certificate: set [tls] cert and key in gateway.toml (or run with --dev for a self-signed CA)")
		}
		if c.Policy.Source == "" {
			return errors.New("no policy repository: set --policy PATH|URL or [policy] source in gateway.toml (or run with --dev to start from the template)")
		}
	}
	return nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
