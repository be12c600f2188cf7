package gateway_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatectl/gatectl/pkg/cli"
	"github.com/gatectl/gatectl/pkg/cli/cmdutil"
)

// TestAuditTailFollowIsOneRead: `gatectl audit tail -f` used to poll once
// a second, and each poll wrote an auth.accept and an audit.read event,
// which the next poll printed: an idle follower fed itself two events a
// second. It now follows over one stream, audited as one read, and -n 0
// prints only what is written from then on.
func TestAuditTailFollowIsOneRead(t *testing.T) {
	t.Setenv("GATECTL_GATEWAY", env.Ready.API)
	t.Setenv("GATECTL_CA", env.Ready.CAFile)
	t.Setenv("GATECTL_TOKEN", token(t, security))
	ctx, stop := context.WithCancel(testCtx(t))
	defer stop()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	started := time.Now()
	go func() {
		done <- cli.Run(ctx, cmdutil.Test(strings.NewReader(""), &out, &errOut), []string{"audit", "tail", "-n", "0", "-f", "--output", "json"})
	}()
	mark := "follow-" + strings.ReplaceAll(started.Format("150405.000000"), ".", "")
	time.Sleep(500 * time.Millisecond)
	if _, err := connect(t, pgConfig(t, etl)).Exec(testCtx(t), "SELECT '"+mark+"'"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), mark); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the follower never printed the new statement; stdout %q, stderr %q", out.String(), errOut.String())
		}
	}
	time.Sleep(2 * time.Second) // an idle follower used to write 2 events a second
	stop()
	if code := <-done; code != 0 {
		t.Errorf("tail -f exited %d on Ctrl-C; stderr %q", code, errOut.String())
	}
	// The stream's own read is written after the follower started, so
	// it prints that once; it used to print a new one every second.
	if n := strings.Count(out.String(), `"action":"audit.read"`); n > 1 {
		t.Errorf("the follower printed %d reads of the audit log:\n%s", n, out.String())
	}
	reads := 0
	for _, e := range auditEvents(t, url.Values{"action": {"audit.read"}, "principal": {security.principal}, "since": {started.UTC().Format(time.RFC3339Nano)}}) {
		if strings.Contains(e.Detail["query"], "follow=true") {
			reads++
		}
	}
	if reads != 1 {
		t.Errorf("%d audit.read events for the follow stream, want 1", reads)
	}
}
