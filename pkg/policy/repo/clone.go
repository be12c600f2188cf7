package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// liveRef records the commit that was last made live, so that a restarted
// gateway can come up on it when the source is unreachable or its tip is
// broken. It lives only in the local clone.
const liveRef = plumbing.ReferenceName("refs/gatectl/live")

// stateSection is the clone's git config section naming the source and
// branch the clone follows; liveRef is trusted only while they match.
const stateSection = "gatectl"

// clone is the bare clone of the policy branch under the data dir. It is used
// by one goroutine at a time, besides a fetch abandoned after its timeout:
// that one is stuck connecting (the one step go-git does not bound by its
// context) and has written nothing.
type clone struct {
	repo     *git.Repository
	source   string // as configured; may hold a credential, never log it
	branch   string
	opts     Options
	trackRef plumbing.ReferenceName

	// remoteURL and auth are what fetch hands go-git: remoteSource.
	remoteURL string
	auth      transport.AuthMethod
	scrubber  *strings.Replacer // hides source's credentials in errors

	// abandoned receives the result of a fetch abandoned at its timeout,
	// started at abandonedSince, once it returns; nil when there is none.
	// No other fetch starts before, so that two never write the clone.
	abandoned      chan error
	abandonedSince time.Time
}

// errFetchTimeout is a fetch that got no complete answer in time.
var errFetchTimeout = errors.New("no answer from the repository")

// abandonGrace is how long fetch waits, after the timeout, for go-git to
// notice it and return; past it, the fetch is abandoned still running.
const abandonGrace = time.Second

// openClone opens the bare clone in opts.Dir, creating it if needed. If the
// clone followed another source or branch before, its live commit is
// forgotten: fail closed rather than come up on another repository's policy.
func openClone(opts Options) (*clone, error) {
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create policy clone dir: %w", err)
	}
	r, err := git.PlainOpen(opts.Dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		r, err = initBare(opts.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open policy clone in %s: %w", opts.Dir, err)
	}
	remoteURL, auth := remoteSource(opts.Source, opts.Auth)
	c := &clone{
		repo:      r,
		source:    opts.Source,
		branch:    opts.Branch,
		opts:      opts,
		trackRef:  plumbing.NewRemoteReferenceName("origin", opts.Branch),
		remoteURL: remoteURL,
		auth:      auth,
		scrubber:  sourceScrubber(opts.Source),
	}
	if err := c.checkState(); err != nil {
		return nil, fmt.Errorf("open policy clone in %s: %w", opts.Dir, err)
	}
	return c, nil
}

func initBare(dir string) (*git.Repository, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(entries) > 0 {
		// Fail closed: never write a clone into a directory holding something else.
		return nil, fmt.Errorf("%s is not empty and not a git repository: remove it or point the gateway at another data dir", dir)
	}
	return git.PlainInit(dir, true)
}

// checkState compares the recorded source and branch with the configured
// ones, dropping the live commit on a change and recording the new pair. The
// source is recorded redacted: the config is a file on disk, and the remote
// itself is never written there (fetch uses an in-memory remote).
func (c *clone) checkState() error {
	cfg, err := c.repo.Config()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	s := cfg.Raw.Section(stateSection)
	source := RedactSource(c.source)
	recorded := s.Option("source")
	if recorded == source && s.Option("branch") == c.branch {
		return nil
	}
	// An older gatectl recorded the same source in its own redaction, maybe
	// with a token in clear: keep the live commit, and overwrite the record.
	upgraded := recorded == legacyRedactSource(c.source) && s.Option("branch") == c.branch
	if !upgraded {
		err = c.repo.Storer.RemoveReference(liveRef)
		if err != nil && !errors.Is(err, plumbing.ErrReferenceNotFound) {
			return fmt.Errorf("forget live commit of the previous source: %w", err)
		}
	}
	s.SetOption("source", source)
	s.SetOption("branch", c.branch)
	if err := c.repo.SetConfig(cfg); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// fetch brings the branch's tip into the clone, with full history, and
// returns the tip's hash. It gives up after opts.FetchTimeout, returning an
// error wrapping errFetchTimeout: a server that accepts the connection and
// never answers must not stop the follower from polling, reloading and
// reporting. The error is scrubbed of the source's credentials.
func (c *clone) fetch(ctx context.Context) (plumbing.Hash, error) {
	if c.abandoned != nil {
		select {
		case <-c.abandoned:
			c.abandoned = nil
		default:
			// go-git does not bound every step by ctx (an ssh handshake
			// waits for ever), so an abandoned fetch may still be running.
			return plumbing.ZeroHash, fmt.Errorf("%w: the fetch started %s ago has still not returned",
				errFetchTimeout, time.Since(c.abandonedSince).Round(time.Second))
		}
	}
	fetchCtx, cancel := context.WithTimeout(ctx, c.opts.FetchTimeout)
	defer cancel()
	started := time.Now()
	result := make(chan error, 1)
	go func() { result <- c.fetchRemote(fetchCtx) }()
	var err error
	select {
	case err = <-result:
	case <-fetchCtx.Done():
		select {
		case err = <-result: // go-git noticed: its error says at which step
		case <-time.After(abandonGrace):
			err = fetchCtx.Err()
			c.abandoned, c.abandonedSince = result, started
		}
	}
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return c.tip()
	}
	if ctx.Err() == nil && errors.Is(fetchCtx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%w within %s (%w)", errFetchTimeout, c.opts.FetchTimeout, err)
	}
	return plumbing.ZeroHash, scrub(err, c.scrubber)
}

// tip returns the hash of the branch's tip as last fetched.
func (c *clone) tip() (plumbing.Hash, error) {
	ref, err := c.repo.Storer.Reference(c.trackRef)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read %s after fetch: %w", c.trackRef, err)
	}
	return ref.Hash(), nil
}

// fetchRemote runs one fetch of the branch into trackRef.
func (c *clone) fetchRemote(ctx context.Context) error {
	remote := git.NewRemote(c.repo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{c.remoteURL}})
	spec := config.RefSpec(fmt.Sprintf("+%s:%s", plumbing.NewBranchReferenceName(c.branch), c.trackRef))
	return remote.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: []config.RefSpec{spec},
		Auth:     c.auth,
		CABundle: c.opts.CABundle,
		Tags:     git.NoTags,
	})
}

// live returns the commit recorded as live by an earlier run, if any.
func (c *clone) live() (plumbing.Hash, bool) {
	ref, err := c.repo.Storer.Reference(liveRef)
	if err != nil {
		return plumbing.ZeroHash, false
	}
	return ref.Hash(), true
}

func (c *clone) setLive(h plumbing.Hash) error {
	return c.repo.Storer.SetReference(plumbing.NewHashReference(liveRef, h))
}

// descends reports whether commit h is base or has it in its history.
func (c *clone) descends(h, base plumbing.Hash) (bool, error) {
	if h == base {
		return true, nil
	}
	b, err := c.repo.CommitObject(base)
	if err != nil {
		return false, fmt.Errorf("read commit %s: %w", base, err)
	}
	n, err := c.repo.CommitObject(h)
	if err != nil {
		return false, fmt.Errorf("read commit %s: %w", h, err)
	}
	return b.IsAncestor(n)
}

// read returns the commit h and its files.
func (c *clone) read(h plumbing.Hash) (Commit, *treeFS, error) {
	obj, err := c.repo.CommitObject(h)
	if err != nil {
		return Commit{Hash: h.String()}, nil, fmt.Errorf("read commit %s: %w", h, err)
	}
	tree, err := obj.Tree()
	if err != nil {
		return newCommit(obj), nil, fmt.Errorf("read tree of commit %s: %w", h, err)
	}
	commit := newCommit(obj)
	return commit, newTreeFS(c.repo.Storer, tree, commit.Time), nil
}
