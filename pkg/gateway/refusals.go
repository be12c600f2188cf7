package gateway

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/gatectl/gatectl/pkg/audit"
)

// Anyone who can reach a listener can be refused, and every refusal used to
// be an audit event of its own: a loop of bad tokens could fill the disk
// under the audit log, and a gateway whose audit log fails refuses everyone
// (fail closed). So the refusals of unauthenticated callers are audited one
// by one only up to a rate per source; beyond it they are counted, and the
// count becomes an event of its own. No refusal goes unaudited.
const (
	// refusalBurst refusals from one source are audited one by one before
	// the rate applies.
	refusalBurst = 20
	// refusalEvery is the rate after the burst: one more per interval.
	refusalEvery = 3 * time.Second
	// refusalSources bounds the sources tracked one by one; the refusals
	// of any more share one count per listener.
	refusalSources = 4096
)

// refusalReportEvery is how often the counts are written as events.
var refusalReportEvery = 10 * time.Second

// refusalLimiter decides which refusals of unauthenticated callers are
// audited one by one and counts the others, per listener and source.
type refusalLimiter struct {
	mu      sync.Mutex
	sources map[refusalKey]*refusalSource
	// stopped is set once the counts are no longer reported: from then
	// on every refusal is audited one by one, so that none is counted
	// and never written (an API handler may outlive the shutdown's wait).
	stopped bool
}

// refusalKey is a listener ("api", "postgres") and a source address: an
// IPv4 address, or the /64 network of an IPv6 one, since one host holds a
// whole /64 and could rotate through it.
type refusalKey struct{ via, source string }

type refusalSource struct {
	tokens   float64   // refusals that may still be audited one by one
	refilled time.Time // when tokens was last topped up
	// unrecorded counts the refusals counted rather than audited since the
	// source's last event; first is when the first of them happened.
	unrecorded int
	first      time.Time
}

// refusalCount is a count of refusals that were not audited one by one.
type refusalCount struct {
	key   refusalKey
	n     int
	first time.Time
}

// admit reports whether a refusal from remote over via at now is audited
// one by one. If it is, unrecorded is the number of refusals from the same
// source that were only counted since its previous event, which the event
// must carry; the count starts again.
func (l *refusalLimiter) admit(via, remote string, now time.Time) (ok bool, unrecorded int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return true, 0
	}
	if l.sources == nil {
		l.sources = make(map[refusalKey]*refusalSource)
	}
	k := refusalKey{via, refusalSourceOf(remote)}
	s := l.sources[k]
	if s == nil {
		if len(l.sources) >= refusalSources {
			k.source = "other addresses"
			s = l.sources[k]
		}
		if s == nil {
			s = &refusalSource{tokens: refusalBurst, refilled: now}
			l.sources[k] = s
		}
	}
	s.refill(now)
	if s.tokens < 1 {
		if s.unrecorded == 0 {
			s.first = now
		}
		s.unrecorded++
		return false, 0
	}
	s.tokens--
	unrecorded, s.unrecorded = s.unrecorded, 0
	return true, unrecorded
}

func (s *refusalSource) refill(now time.Time) {
	if d := now.Sub(s.refilled); d > 0 {
		s.tokens = min(refusalBurst, s.tokens+float64(d)/float64(refusalEvery))
		s.refilled = now
	}
}

// take returns the counts of refusals not audited one by one, sorted, and
// starts them again; it also forgets the sources that have nothing to
// count and whose burst is whole again. With last, it is the final take:
// admit lets every later refusal through.
func (l *refusalLimiter) take(now time.Time, last bool) []refusalCount {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = l.stopped || last
	var out []refusalCount
	for k, s := range l.sources {
		if s.unrecorded > 0 {
			out = append(out, refusalCount{key: k, n: s.unrecorded, first: s.first})
			s.unrecorded = 0
			continue
		}
		if s.refill(now); s.tokens >= refusalBurst {
			delete(l.sources, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].key.via != out[j].key.via {
			return out[i].key.via < out[j].key.via
		}
		return out[i].key.source < out[j].key.source
	})
	return out
}

// refusalSourceOf is the source that remote ("host:port", or a bare host)
// is counted under.
func refusalSourceOf(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// recordRefusal audits e, the refusal of a caller not yet authenticated
// that came from remote over via, within the limit of its source: the event
// carries the number of the source's refusals only counted before it, or,
// beyond the limit, e is only counted.
func (g *Gateway) recordRefusal(e audit.Event, via, remote string) {
	ok, unrecorded := g.refusals.admit(via, remote, time.Now())
	if !ok {
		return
	}
	if unrecorded > 0 {
		d := make(map[string]string, len(e.Detail)+1)
		for k, v := range e.Detail {
			d[k] = v
		}
		d["unrecorded_before"] = strconv.Itoa(unrecorded)
		e.Detail = d
	}
	g.record(e)
}

// reportRefusals writes an event for each source with refusals that were
// only counted since its last event; see take for last.
func (g *Gateway) reportRefusals(now time.Time, last bool) {
	var commit string
	if pol := g.currentPolicy(); pol != nil {
		commit = pol.Commit
	}
	for _, c := range g.refusals.take(now, last) {
		g.log.Warn("refused unauthenticated callers faster than the audit log records them one by one; counted instead",
			"via", c.key.via, "source", c.key.source, "refusals", c.n)
		g.record(audit.Event{Time: now, Action: "auth.refuse", Decision: "deny", PolicyCommit: commit,
			Reason: fmt.Sprintf("%d more refusals from %s were counted, not recorded one by one: more than %d at once, or one per %s after that",
				c.n, c.key.source, refusalBurst, refusalEvery),
			Detail: map[string]string{"via": c.key.via, "remote": c.key.source, "unrecorded": strconv.Itoa(c.n),
				"first_unrecorded": c.first.UTC().Format(time.RFC3339Nano)}})
	}
}

// reportRefusalsEvery runs reportRefusals every interval until stop is
// closed, then once more.
func (g *Gateway) reportRefusalsEvery(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			g.reportRefusals(now, false)
		case <-stop:
			g.reportRefusals(time.Now(), true)
			return
		}
	}
}
