// Package demo builds the throwaway environment of `gatectl demo`: a
// PostgreSQL server with a sample schema, a policy repository pointing at
// it, and a --dev gateway in front. Tests and benchmarks use it too.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing/fstest"

	gatectl "github.com/gatectl/gatectl"
	"github.com/gatectl/gatectl/pkg/gateway"
	"github.com/gatectl/gatectl/pkg/pgserver"
	"github.com/gatectl/gatectl/pkg/policy/repo"
)

// Options configures Start.
type Options struct {
	// Dir holds the gateway data dir and the policy repo; a new temporary
	// directory (removed by Stop) when empty.
	Dir            string
	ListenAPI      string // default gateway.DefaultAPI
	ListenPostgres string // default gateway.DefaultPostgres
	Logger         *slog.Logger
	// Customers is the number of sample customers (default 1000); each has
	// five orders.
	Customers int
	// StatementCache is the gateway's [postgres] statement_cache; nil
	// means its default.
	StatementCache *int
}

// Env is a running demo.
type Env struct {
	PG        *pgserver.Server
	Ready     gateway.Ready
	PolicyDir string
	Dir       string

	removeDir bool
	cancel    context.CancelFunc
	done      chan error
}

// Roles and the environment variables the template's credentials name.
var roles = []struct{ role, env string }{
	{"orders_admin", "ORDERS_ADMIN_PASSWORD"},
	{"orders_rw", "ORDERS_RW_PASSWORD"},
	{"orders_ro", "ORDERS_RO_PASSWORD"},
}

// Start starts PostgreSQL, loads the sample schema, writes the policy repo
// and starts the gateway. The caller must Stop it.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.Customers == 0 {
		opts.Customers = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Env{Dir: opts.Dir, done: make(chan error, 1)}
	if e.Dir == "" {
		if e.Dir, err = os.MkdirTemp("", "gatectl-demo-"); err != nil {
			return nil, err
		}
		e.removeDir = true
	} else if err := os.MkdirAll(e.Dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	opts.Logger.Info("starting a throwaway PostgreSQL")
	if e.PG, err = pgserver.Start(ctx, pgserver.Options{}); err != nil {
		return nil, err
	}
	// The gateway resolves env: credentials from its own environment, which
	// here is this process.
	pw := map[string]string{}
	for _, r := range roles {
		pw[r.role] = randomSecret()
		os.Setenv(r.env, pw[r.role])
	}
	if _, err := e.PG.Psql(ctx, "postgres", schemaRoles(pw)); err != nil {
		return nil, fmt.Errorf("create demo roles: %w", err)
	}
	if _, err := e.PG.Psql(ctx, "orders", schemaTables(opts.Customers)); err != nil {
		return nil, fmt.Errorf("create demo schema: %w", err)
	}

	e.PolicyDir = filepath.Join(e.Dir, "policy")
	tmpl, err := policyFor(e.PG.Addr())
	if err != nil {
		return nil, err
	}
	if _, err := repo.Init(e.PolicyDir, tmpl, "main"); err != nil {
		return nil, fmt.Errorf("write the demo policy: %w", err)
	}

	cfg := gateway.Config{Dev: true, DataDir: filepath.Join(e.Dir, "gateway")}
	cfg.Policy.Source = e.PolicyDir
	cfg.Listen.API, cfg.Listen.Postgres = opts.ListenAPI, opts.ListenPostgres
	cfg.Postgres.StatementCache = opts.StatementCache
	g, err := gateway.New(cfg, opts.Logger)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	ready := make(chan gateway.Ready, 1)
	go func() { e.done <- g.Run(runCtx, nil, func(r gateway.Ready) { ready <- r }) }()
	select {
	case e.Ready = <-ready:
		return e, nil
	case err := <-e.done:
		e.done <- err
		return nil, fmt.Errorf("start the gateway: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Stop stops the gateway and PostgreSQL and removes what Start created.
func (e *Env) Stop() error {
	var errs []error
	if e.cancel != nil {
		e.cancel()
		errs = append(errs, <-e.done)
		e.cancel = nil
	}
	if e.PG != nil {
		errs = append(errs, e.PG.Stop())
		e.PG = nil
	}
	if e.removeDir {
		errs = append(errs, os.RemoveAll(e.Dir))
	}
	return errors.Join(errs...)
}

// policyFor is the policy template with the orders target pointed at addr.
func policyFor(addr string) (fs.FS, error) {
	src := gatectl.PolicyTemplate()
	out := fstest.MapFS{}
	err := fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		if p == "targets/orders.toml" {
			const want = `address = "127.0.0.1:5432"`
			if !strings.Contains(string(b), want) {
				return fmt.Errorf("template targets/orders.toml has no %s line to point at the demo database", want)
			}
			b = []byte(strings.Replace(string(b), want, fmt.Sprintf("address = %q", addr), 1))
		}
		out[p] = &fstest.MapFile{Data: b, Mode: 0o644}
		return nil
	})
	return out, err
}

func randomSecret() string {
	var b [18]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
