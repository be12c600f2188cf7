package repo

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// liveRef records the commit that was last made live, so that a restarted
// gateway can come up on it when the source is unreachable or its tip is
// broken. It lives only in the local clone.
const liveRef = plumbing.ReferenceName("refs/gatectl/live")

// stateSection is the clone's git config section naming the source and
// branch the clone follows; liveRef is trusted only while they match.
const stateSection = "gatectl"

// clone is the bare clone of the policy branch under the data dir. It is used
// by one goroutine at a time.
type clone struct {
	repo     *git.Repository
	source   string // as configured; may hold a credential, never log it
	branch   string
	opts     Options
	trackRef plumbing.ReferenceName
}

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
	c := &clone{
		repo:     r,
		source:   opts.Source,
		branch:   opts.Branch,
		opts:     opts,
		trackRef: plumbing.NewRemoteReferenceName("origin", opts.Branch),
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
// ones, dropping the live commit on a change and recording the new pair.
func (c *clone) checkState() error {
	cfg, err := c.repo.Config()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	s := cfg.Raw.Section(stateSection)
	source := redactSource(c.source)
	if s.Option("source") == source && s.Option("branch") == c.branch {
		return nil
	}
	err = c.repo.Storer.RemoveReference(liveRef)
	if err != nil && !errors.Is(err, plumbing.ErrReferenceNotFound) {
		return fmt.Errorf("forget live commit of the previous source: %w", err)
	}
	s.SetOption("source", source)
	s.SetOption("branch", c.branch)
	if err := c.repo.SetConfig(cfg); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// fetch brings the branch's tip into the clone, with full history, and
// returns the tip's hash.
func (c *clone) fetch(ctx context.Context) (plumbing.Hash, error) {
	remote := git.NewRemote(c.repo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{c.source}})
	spec := config.RefSpec(fmt.Sprintf("+%s:%s", plumbing.NewBranchReferenceName(c.branch), c.trackRef))
	err := remote.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: []config.RefSpec{spec},
		Auth:     c.opts.Auth,
		CABundle: c.opts.CABundle,
		Tags:     git.NoTags,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return plumbing.ZeroHash, scrub(err, sourceSecret(c.source))
	}
	ref, err := c.repo.Storer.Reference(c.trackRef)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read %s after fetch: %w", c.trackRef, err)
	}
	return ref.Hash(), nil
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
