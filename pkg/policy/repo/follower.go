package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// DefaultBranch is the branch followed when Options.Branch is empty.
const DefaultBranch = "main"

// DefaultInterval is the poll interval when Options.Interval is zero.
const DefaultInterval = 30 * time.Second

// DefaultFetchTimeout bounds a fetch when Options.FetchTimeout is zero. A
// policy repository is small: a fetch that takes longer is a hung server.
const DefaultFetchTimeout = 2 * time.Minute

// EventPolicyLoad is the Kind of the Event emitted for each commit tried.
const EventPolicyLoad = "policy.load"

// EventPolicyFetch is the Kind of the Event emitted when fetching the
// source fails (once per distinct failure) and when it works again.
const EventPolicyFetch = "policy.fetch"

// Loader builds the policy from the files of commit c. It must not keep fsys
// past its return. An error keeps c from going live.
type Loader[T any] func(fsys fs.FS, c Commit) (T, error)

// Options configure a Follower.
type Options struct {
	// Source is the repository: a local path, or a file://, https:// or
	// ssh:// URL, or scp-like git@host:path. Credentials in an https URL
	// (user name, password, query values) are used but never logged, shown
	// or written to the clone: see RedactSource.
	Source string
	// Branch is the followed branch; DefaultBranch when empty.
	Branch string
	// Dir holds the bare clone, under the gateway's data dir. It must be
	// empty, missing, or a clone made by an earlier Follower.
	Dir string
	// Interval between polls; DefaultInterval when zero.
	Interval time.Duration
	// FetchTimeout bounds each fetch; DefaultFetchTimeout when zero. A
	// fetch that times out fails like any other: the live commit stays, or
	// at start the one live before the restart comes up.
	FetchTimeout time.Duration
	// Auth authenticates to the remote (optional; for ssh, go-git falls
	// back to the ssh agent).
	Auth transport.AuthMethod
	// CABundle holds extra PEM roots for an https remote (optional).
	CABundle []byte
	// Logger receives the follower's logs; slog.Default when nil.
	Logger *slog.Logger
}

// Event reports one commit tried, so the gateway can audit it. It is emitted
// once per new commit, not on polls that find the branch unchanged.
type Event struct {
	Kind   string // EventPolicyLoad
	Commit Commit
	OK     bool  // the commit went live
	Err    error // why it did not; nil when OK
	// Replaced is the commit that was live before, set only when Commit
	// went live without descending from it: the branch was rolled back or
	// its history rewritten (a force-push). It goes live all the same, as
	// an operator may roll back on purpose, but it deserves a look.
	Replaced Commit
}

// Status is what `gatectl policy status` shows.
type Status struct {
	Source string // redacted: no credentials (see RedactSource)
	Branch string
	// Live is the commit in force; zero before the first good load.
	Live      Commit
	LiveSince time.Time
	// LastTried is the newest commit loaded, live or not.
	LastTried   Commit
	LastTriedAt time.Time
	// LastFetchAt is when the branch was last fetched successfully.
	LastFetchAt time.Time
	// LastError is why the newest sync did not bring the branch tip live
	// (a fetch or load failure); empty when the tip is live.
	LastError string
}

// Follower follows one branch of a policy repository and holds the newest
// commit that loaded. Its methods are safe for concurrent use.
type Follower[T any] struct {
	opts    Options
	source  string // opts.Source redacted, for messages
	load    Loader[T]
	onEvent func(Event)
	log     *slog.Logger
	reload  chan struct{}
	done    chan struct{}

	startOnce sync.Once
	clone     *clone // owned by the goroutine running sync

	mu       sync.RWMutex
	live     T
	hasLive  bool
	status   Status
	fetchErr string // last fetch error logged, to log only changes
	loadErr  string // why status.LastTried is not live; empty when it is
}

// NewFollower returns a Follower that builds policy with load and reports
// every commit tried to onEvent (nil for none). onEvent runs on the
// follower's goroutine; it should not block for long.
func NewFollower[T any](opts Options, load Loader[T], onEvent func(Event)) *Follower[T] {
	if opts.Branch == "" {
		opts.Branch = DefaultBranch
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	source := RedactSource(opts.Source)
	return &Follower[T]{
		opts:    opts,
		source:  source,
		load:    load,
		onEvent: onEvent,
		log:     opts.Logger.With("source", source, "branch", opts.Branch),
		reload:  make(chan struct{}, 1),
		done:    make(chan struct{}),
		status:  Status{Source: source, Branch: opts.Branch},
	}
}

// Start syncs once and then polls in the background until ctx is done. It
// returns an error only when there is no good policy at all: the repository
// cannot be fetched and no earlier run left a live commit, or neither the
// branch tip nor that commit loads. Start may be called once.
func (f *Follower[T]) Start(ctx context.Context) error {
	err := errors.New("policy follower already started")
	f.startOnce.Do(func() { err = f.start(ctx) })
	return err
}

func (f *Follower[T]) start(ctx context.Context) error {
	if f.opts.Source == "" {
		close(f.done)
		return errors.New("no policy source configured: set the policy repository path or URL (--policy)")
	}
	if f.opts.Dir == "" {
		close(f.done)
		return errors.New("no directory for the policy clone: set the gateway data dir")
	}
	if err := plumbing.NewBranchReferenceName(f.opts.Branch).Validate(); err != nil {
		close(f.done)
		return fmt.Errorf("policy branch %q is not a valid branch name: %w", f.opts.Branch, err)
	}
	c, err := openClone(f.opts)
	if err != nil {
		close(f.done)
		return err
	}
	f.clone = c
	if err := f.sync(ctx, true, false); err != nil {
		close(f.done)
		return err
	}
	go f.loop(ctx)
	return nil
}

// Done is closed when the polling loop has stopped (after ctx is done), or
// when Start failed.
func (f *Follower[T]) Done() <-chan struct{} { return f.done }

// Reload asks for a fetch now, as on SIGHUP, without waiting for it. A
// branch tip that failed to load before is tried again.
func (f *Follower[T]) Reload() {
	select {
	case f.reload <- struct{}{}:
	default: // a reload is already pending; it will see the same branch
	}
}

// Current returns the live policy and its commit; ok is false before any
// commit has loaded.
func (f *Follower[T]) Current() (policy T, c Commit, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.live, f.status.Live, f.hasLive
}

// Status returns the follower's state for `gatectl policy status`.
func (f *Follower[T]) Status() Status {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.status
}

func (f *Follower[T]) loop(ctx context.Context) {
	defer close(f.done)
	t := time.NewTicker(f.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = f.sync(ctx, false, false) // only Start's first sync returns an error
		case <-f.reload:
			_ = f.sync(ctx, false, true)
		}
	}
}

func (f *Follower[T]) hasLiveCommit() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.hasLive
}
