package repo

import (
	"context"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// sync fetches the branch and tries its tip if it is new (or, with force,
// if it failed before). It returns an error only when first is set and no
// commit could be made live: that is Start's "no policy at all".
func (f *Follower[T]) sync(ctx context.Context, first, force bool) error {
	tip, err := f.clone.fetch(ctx)
	if err != nil {
		if ctx.Err() != nil && !first {
			return nil // shutting down; the error says nothing about the repository
		}
		ferr := explainFetch(err, f.source, f.opts.Branch)
		f.fetchFailed(ferr)
		if !first || f.hasLiveCommit() {
			return nil // fail safe: the last good policy stays live
		}
		if f.fallBack(plumbing.ZeroHash) {
			return nil
		}
		return fmt.Errorf("no policy to start with: %w", ferr)
	}
	f.fetched(time.Now())

	f.mu.Lock()
	switch tip.String() {
	case f.status.Live.Hash:
		f.status.LastError = ""
		f.mu.Unlock()
		return nil
	case f.status.LastTried.Hash:
		if !force {
			f.status.LastError = f.loadErr // unchanged branch: no new event
			f.mu.Unlock()
			return nil
		}
	}
	f.mu.Unlock()

	lerr := f.try(tip)
	if lerr == nil || !first || f.hasLiveCommit() {
		return nil
	}
	if f.fallBack(tip) {
		return nil
	}
	return fmt.Errorf("no policy to start with: %w", lerr)
}

// fallBack makes the commit that was live before a restart live again, when
// the branch cannot be fetched or its tip (skip) does not load. Status keeps
// showing the tip's failure. The commit was accepted by the same loader
// before, and is the same thing a running gateway would keep.
func (f *Follower[T]) fallBack(skip plumbing.Hash) bool {
	h, ok := f.clone.live()
	if !ok || h == skip {
		return false // fail closed: nothing known good for this source and branch
	}
	f.mu.RLock()
	tried, triedAt, lastErr, loadErr := f.status.LastTried, f.status.LastTriedAt, f.status.LastError, f.loadErr
	f.mu.RUnlock()
	if f.try(h) != nil {
		return false
	}
	f.mu.Lock()
	f.status.LastTried, f.status.LastTriedAt, f.status.LastError, f.loadErr = tried, triedAt, lastErr, loadErr
	f.mu.Unlock()
	f.log.Warn("policy: started on the commit live before the restart; the branch tip is not live",
		"commit", h.String()[:12], "reason", lastErr)
	return true
}

// try loads commit h and makes it live if the loader accepts it. The error
// says which commit failed and how to fix it.
func (f *Follower[T]) try(h plumbing.Hash) error {
	c, fsys, err := f.clone.read(h)
	var policy T
	if err == nil {
		policy, err = f.safeLoad(fsys, c)
	}
	now := time.Now()
	if err != nil {
		werr := fmt.Errorf("policy commit %s (%q) on branch %q does not load: %w; fix it, check with `gatectl policy check`, and push a new commit",
			c.Short(), c.Subject, f.opts.Branch, err)
		f.mu.Lock()
		f.status.LastTried, f.status.LastTriedAt = c, now
		f.status.LastError, f.loadErr = werr.Error(), werr.Error()
		live := f.status.Live
		f.mu.Unlock()
		// Fail closed: the commit does not go live; the last good one (if any) stays.
		f.log.Error("policy commit rejected; keeping the last good commit",
			"commit", c.Short(), "subject", c.Subject, "live", live.Short(), "err", err)
		f.onEvent(Event{Kind: EventPolicyLoad, Commit: c, OK: false, Err: err})
		return werr
	}
	replaced := f.replacedHistory(h)
	if err := f.clone.setLive(h); err != nil {
		// Only a restart's fallback depends on this record; the commit loaded.
		f.log.Warn("policy: could not record the live commit in the clone", "err", err)
	}
	f.mu.Lock()
	f.live, f.hasLive = policy, true
	f.status.Live, f.status.LiveSince = c, now
	f.status.LastTried, f.status.LastTriedAt = c, now
	f.status.LastError, f.loadErr = "", ""
	f.mu.Unlock()
	if replaced.IsZero() {
		f.log.Info("policy commit live", "commit", c.Short(), "subject", c.Subject, "author", c.Author)
	} else {
		f.log.Warn("policy commit live; history rewritten: it does not descend from the commit live before (a rollback or force-push)",
			"commit", c.Short(), "subject", c.Subject, "author", c.Author, "replaced", replaced.Short())
	}
	f.onEvent(Event{Kind: EventPolicyLoad, Commit: c, OK: true, Replaced: replaced})
	return nil
}

// replacedHistory returns the commit live before h (in this run, or else
// the one recorded by the last run) when h does not descend from it, and
// the zero Commit otherwise.
func (f *Follower[T]) replacedHistory(h plumbing.Hash) Commit {
	f.mu.RLock()
	prev := f.status.Live
	f.mu.RUnlock()
	prevHash := plumbing.NewHash(prev.Hash)
	if prev.IsZero() {
		var ok bool
		if prevHash, ok = f.clone.live(); !ok {
			return Commit{} // the first commit of this source and branch
		}
	}
	ok, err := f.clone.descends(h, prevHash)
	if err != nil {
		// Only a warning is at stake; the commit loaded and goes live.
		f.log.Warn("policy: could not tell whether the new commit descends from the one live before", "err", err)
		return Commit{}
	}
	if ok {
		return Commit{}
	}
	if prev.IsZero() {
		prev, _, _ = f.clone.read(prevHash)
	}
	return prev
}

// safeLoad runs the loader, turning a panic into a load error so that a
// malformed commit cannot take the gateway down.
func (f *Follower[T]) safeLoad(fsys *treeFS, c Commit) (policy T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("policy loader panicked: %v", r)
		}
	}()
	return f.load(fsys, c)
}

func (f *Follower[T]) fetchFailed(err error) {
	msg := err.Error()
	f.mu.Lock()
	f.status.LastError = msg
	changed := f.fetchErr != msg
	f.fetchErr = msg
	live := f.status.Live.Hash != ""
	f.mu.Unlock()
	switch {
	case !changed: // log a failure once, not on every poll
		return
	case live:
		f.log.Warn("policy fetch failed; keeping the last good commit", "err", msg)
	default:
		f.log.Warn("policy fetch failed; no policy is live yet", "err", msg)
	}
	f.onEvent(Event{Kind: EventPolicyFetch, Err: err})
}

func (f *Follower[T]) fetched(at time.Time) {
	f.mu.Lock()
	f.status.LastFetchAt = at
	recovered := f.fetchErr != ""
	f.fetchErr = ""
	f.mu.Unlock()
	if recovered {
		f.log.Info("policy fetch works again")
		f.onEvent(Event{Kind: EventPolicyFetch, OK: true})
	}
}
