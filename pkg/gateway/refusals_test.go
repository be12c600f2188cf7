package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/audit"
	"github.com/gatectl/gatectl/pkg/store/sqlite"
)

func TestRefusalLimiterBurstThenRate(t *testing.T) {
	var l refusalLimiter
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i := range refusalBurst {
		if ok, n := l.admit("api", "10.0.0.5:4000", t0); !ok || n != 0 {
			t.Fatalf("refusal %d: admit = %v, %d; want true, 0 within the burst", i+1, ok, n)
		}
	}
	// The same host from another port is the same source.
	for i := range 5 {
		if ok, _ := l.admit("api", "10.0.0.5:4001", t0.Add(time.Duration(i)*time.Millisecond)); ok {
			t.Fatalf("refusal %d past the burst was admitted", i+1)
		}
	}
	// Another listener and another host have bursts of their own.
	if ok, _ := l.admit("postgres", "10.0.0.5:5000", t0); !ok {
		t.Error("the first refusal on another listener was not admitted")
	}
	if ok, _ := l.admit("api", "10.0.0.6:4000", t0); !ok {
		t.Error("the first refusal from another host was not admitted")
	}
	// One interval later one more is audited, and carries the count.
	ok, n := l.admit("api", "10.0.0.5:4002", t0.Add(refusalEvery))
	if !ok || n != 5 {
		t.Fatalf("after %s: admit = %v, %d; want true, 5", refusalEvery, ok, n)
	}
	if ok, _ := l.admit("api", "10.0.0.5:4003", t0.Add(refusalEvery)); ok {
		t.Error("a second refusal in the same interval was admitted")
	}
	got := l.take(t0.Add(refusalEvery), false)
	if len(got) != 1 || got[0].key != (refusalKey{"api", "10.0.0.5"}) || got[0].n != 1 || !got[0].first.Equal(t0.Add(refusalEvery)) {
		t.Fatalf("take = %+v, want one count of 1 for api 10.0.0.5", got)
	}
	if got := l.take(t0.Add(refusalEvery), false); len(got) != 0 {
		t.Errorf("a second take = %+v, want nothing: counts start again", got)
	}
}

func TestRefusalLimiterForgetsIdleSources(t *testing.T) {
	var l refusalLimiter
	t0 := time.Now()
	l.admit("api", "10.0.0.5:1", t0)
	l.admit("api", "10.0.0.5:1", t0)
	l.take(t0.Add(refusalEvery), false)
	if len(l.sources) != 1 {
		t.Fatalf("a source whose burst is not whole again was forgotten")
	}
	l.take(t0.Add(2*refusalEvery), false)
	if len(l.sources) != 0 {
		t.Errorf("%d sources kept after their bursts were whole again, want 0", len(l.sources))
	}
}

func TestRefusalLimiterBoundsItsSources(t *testing.T) {
	var l refusalLimiter
	t0 := time.Now()
	for i := range refusalSources {
		l.admit("api", fmt.Sprintf("10.%d.%d.%d:1", i>>16, i>>8&255, i&255), t0)
	}
	// Past the bound, every new address shares one count.
	for i := range refusalBurst + 3 {
		l.admit("api", fmt.Sprintf("172.16.%d.%d:1", i>>8, i&255), t0)
	}
	if len(l.sources) != refusalSources+1 {
		t.Fatalf("%d sources tracked, want %d", len(l.sources), refusalSources+1)
	}
	got := l.take(t0, false)
	if len(got) != 1 || got[0].key.source != "other addresses" || got[0].n != 3 {
		t.Errorf("take = %+v, want 3 counted for other addresses", got)
	}
}

func TestRefusalSourceOf(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:5432":                  "192.0.2.7",
		"[::ffff:192.0.2.7]:5432":         "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443":      "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1%eth0]:443": "2001:db8:1:2::/64",
		"192.0.2.7":                       "192.0.2.7",
		"@":                               "@", // a Unix socket's address
	} {
		if got := refusalSourceOf(remote); got != want {
			t.Errorf("refusalSourceOf(%q) = %q, want %q", remote, got, want)
		}
	}
}

// TestRefusalCountsAreWrittenAtStop checks that the counts still pending
// when the gateway stops become events before its audit log closes.
func TestRefusalCountsAreWrittenAtStop(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log, err := audit.Open(ctx, db.Audit(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{log: slog.New(slog.DiscardHandler), audit: log}
	for range refusalBurst + 7 {
		g.recordRefusal(audit.Event{Action: "auth.refuse", Decision: "deny", Detail: map[string]string{"remote": "192.0.2.9:1"}}, "postgres", "192.0.2.9:1")
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		g.reportRefusalsEvery(time.Hour, stop)
	}()
	close(stop)
	<-done
	// A refusal after the last report (an API handler that outlived the
	// shutdown's wait) is audited one by one rather than counted unseen.
	g.recordRefusal(audit.Event{Action: "auth.refuse", Decision: "deny", Detail: map[string]string{"remote": "192.0.2.9:2"}}, "postgres", "192.0.2.9:2")
	if err := log.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var one, counted int
	err = db.Audit().Scan(ctx, audit.Filter{Action: "auth.refuse"}, func(e audit.Event) error {
		if e.Detail["unrecorded"] != "" {
			if e.Detail["unrecorded"] != "7" || e.Detail["remote"] != "192.0.2.9" || e.Detail["via"] != "postgres" {
				t.Errorf("count event detail = %v, want 7 unrecorded from 192.0.2.9 over postgres", e.Detail)
			}
			counted++
		} else {
			one++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if one != refusalBurst+1 || counted != 1 {
		t.Errorf("%d refusals audited one by one and %d count events, want %d and 1", one, counted, refusalBurst+1)
	}
}

// TestRefusalReportsRunBesideStartAndStop starts and stops a gateway while
// the refusal reports run every millisecond: under -race (make test runs
// this package so) it fails if they read the gateway's policy follower
// before start has set it.
func TestRefusalReportsRunBesideStartAndStop(t *testing.T) {
	old := refusalReportEvery
	refusalReportEvery = time.Millisecond
	defer func() { refusalReportEvery = old }()
	cfg := Config{Dev: true, DataDir: t.TempDir()}
	cfg.Listen.API, cfg.Listen.Postgres = "127.0.0.1:0", "off"
	g, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := g.start(ctx); err != nil {
		g.close()
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := g.shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
