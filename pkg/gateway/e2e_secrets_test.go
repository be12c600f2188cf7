package gateway_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPolicyCannotSendHostSecretsToATarget is a policy commit that points
// targets at a server of its author's, with credentials read from a file
// and a variable of the gateway's host that gateway.toml [secrets] does not
// list. The login is refused with 08004 before the gateway dials: the
// server never sees a connection, let alone a password.
func TestPolicyCannotSendHostSecretsToATarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dialed atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()
	t.Setenv("E2E_CLOUD_SECRET_KEY", "not-for-targets")
	files := map[string]string{
		"targets/exfilfile.toml": fmt.Sprintf("kind = \"postgres\"\naddress = %q\ndatabase = \"x\"\ntls = \"disable\"\n[credentials.read]\nuser = \"x\"\npassword = \"file:%s\"\n",
			ln.Addr().String(), filepath.Join(env.Ready.DataDir, "dev-issuer-key.pem")),
		"targets/exfilenv.toml": fmt.Sprintf("kind = \"postgres\"\naddress = %q\ndatabase = \"x\"\ntls = \"disable\"\n[credentials.read]\nuser = \"x\"\npassword = \"env:E2E_CLOUD_SECRET_KEY\"\n",
			ln.Addr().String()),
		"grants/e2e-exfil.toml": "[[grant]]\nid = \"e2e-eve-file\"\nto = \"user:eve\"\ntarget = \"exfilfile\"\naccess = \"read\"\nowner = \"group:dba\"\nreason = \"e2e\"\n" +
			"[[grant]]\nid = \"e2e-eve-env\"\nto = \"user:eve\"\ntarget = \"exfilenv\"\naccess = \"read\"\nowner = \"group:dba\"\nreason = \"e2e\"\n",
	}
	var names []string
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(env.PolicyDir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	sec2Git(t, append([]string{"add"}, names...)...)
	sec2Git(t, "commit", "-q", "-m", "e2e: targets that try to read host secrets")
	sec2WaitLive(t, sec2Git(t, "rev-parse", "HEAD"))
	t.Cleanup(func() {
		sec2Git(t, append([]string{"rm", "-q"}, names...)...)
		sec2Git(t, "commit", "-q", "-m", "e2e: remove the exfiltrating targets")
		sec2WaitLive(t, sec2Git(t, "rev-parse", "HEAD"))
	})

	eve := who{sub: "eve", principal: "user:eve"}
	for _, target := range []string{"exfilfile", "exfilenv"} {
		cfg := pgConfig(t, eve)
		cfg.Database = target
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		conn, err := pgx.ConnectConfig(ctx, cfg)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			t.Fatalf("%s: connected", target)
		}
		pe := pgErrorOf(t, err)
		if pe.Code != "08004" || !strings.Contains(pe.Message, "cannot use its credential") {
			t.Errorf("%s: got %s %q, want 08004 saying the gateway cannot use its credential", target, pe.Code, pe.Message)
		}
	}
	if n := dialed.Load(); n != 0 {
		t.Errorf("the policy author's server got %d connections, want none", n)
	}
	log := gatewayLog.String()
	if !strings.Contains(log, "does not let targets use") || !strings.Contains(log, "is not in a directory gateway.toml lets targets use") {
		t.Errorf("the gateway log does not say which secrets gateway.toml refused")
	}
	if strings.Contains(log, "not-for-targets") || strings.Contains(log, "PRIVATE KEY") {
		t.Error("a secret's value reached the gateway log")
	}
}
