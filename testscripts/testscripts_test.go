// Package testscripts runs gatectl's end-to-end CLI scripts
// (testdata/<area>-<aspect>.txtar) with gatectl registered in-process.
package testscripts

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/rogpeppe/go-internal/testscript"
	_ "modernc.org/sqlite"

	"github.com/gatectl/gatectl/pkg/cli"
	"github.com/gatectl/gatectl/pkg/gateway"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"gatectl": func() { os.Exit(cli.Main()) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			// Scripts must not pick up the developer's gateway or token.
			for _, k := range []string{"GATECTL_GATEWAY", "GATECTL_TOKEN", "GATECTL_CA", "PGPASSWORD", "PGHOST", "PGPORT"} {
				env.Setenv(k, "")
			}
			env.Setenv("NO_COLOR", "1")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"wait-gateway": waitGateway,
			"forge-token":  forgeToken,
			"sqlite-exec":  sqliteExec,
			"eventually":   eventually,
			"exits":        exits,
			"hup":          hup,
		},
	})
}

// wait-gateway DATADIR waits for a gateway started in the background to
// write its ready file, then points GATECTL_GATEWAY, GATECTL_CA, PGHOST and
// PGPORT at it.
func waitGateway(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: wait-gateway DATADIR")
	}
	path := filepath.Join(ts.MkAbs(args[0]), gateway.ReadyFile)
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var r gateway.Ready
			if err := json.Unmarshal(b, &r); err != nil {
				ts.Fatalf("ready file: %v", err)
			}
			ts.Setenv("GATECTL_GATEWAY", r.API)
			ts.Setenv("GATECTL_CA", r.CAFile)
			if host, port, ok := strings.Cut(r.Postgres, ":"); ok {
				ts.Setenv("PGHOST", host)
				ts.Setenv("PGPORT", port)
			}
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("gateway did not become ready within 60s (no %s)", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventually SECONDS REGEXP COMMAND ARGS... runs a command (like exec) until
// its stdout matches REGEXP, for state the gateway reaches asynchronously
// (a policy poll).
func eventually(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: eventually SECONDS REGEXP COMMAND ARGS...")
	}
	secs, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("eventually: %v", err)
	}
	re := regexp.MustCompile(args[1])
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	for {
		err := ts.Exec(args[2], args[3:]...)
		if err == nil && re.MatchString(ts.ReadFile("stdout")) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("eventually: %q did not print a match for %q within %ds (last error: %v)", strings.Join(args[2:], " "), args[1], secs, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exits CODE COMMAND ARGS... runs a command (like exec) and checks its exit
// code, for the exit codes of DESIGN.md §4.
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: exits CODE COMMAND ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: %v", err)
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit code: got %d, want %d", got, want)
	}
}

// hup DATADIR sends SIGHUP to the gateway of DATADIR (reload the policy).
func hup(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: hup DATADIR")
	}
	var r gateway.Ready
	b, err := os.ReadFile(filepath.Join(ts.MkAbs(args[0]), gateway.ReadyFile))
	if err != nil {
		ts.Fatalf("hup: %v", err)
	}
	json.Unmarshal(b, &r)
	if err := syscall.Kill(r.PID, syscall.SIGHUP); err != nil {
		ts.Fatalf("hup: %v", err)
	}
}

// sqlite-exec DBFILE SQL runs SQL on a store, for tamper tests.
func sqliteExec(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: sqlite-exec DBFILE SQL")
	}
	db, err := sql.Open("sqlite", ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("open: %v", err)
	}
	defer db.Close()
	res, err := db.Exec(args[1])
	if err != nil {
		ts.Fatalf("sqlite-exec: %v", err)
	}
	if n, _ := res.RowsAffected(); n == 0 && !neg {
		ts.Fatalf("sqlite-exec: changed no rows")
	}
}

// forge-token KIND DATADIR FILE writes a hostile or broken token for the
// --dev gateway of DATADIR to FILE. KIND is one of: alg-none, hmac-pubkey,
// unknown-kid, expired, not-yet-valid, wrong-audience, untrusted-issuer,
// garbage.
func forgeToken(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: forge-token KIND DATADIR FILE")
	}
	kind, dir, out := args[0], ts.MkAbs(args[1]), ts.MkAbs(args[2])
	var r gateway.Ready
	b, err := os.ReadFile(filepath.Join(dir, gateway.ReadyFile))
	if err != nil {
		ts.Fatalf("forge-token needs a running gateway: %v", err)
	}
	json.Unmarshal(b, &r)
	iss := r.API + "/dev"
	key, kid := devKey(ts, dir, r)
	now := time.Now()
	claims := map[string]any{"iss": iss, "sub": "mallory", "aud": "gatectl", "iat": now.Unix(), "nbf": now.Unix() - 1, "exp": now.Add(time.Hour).Unix()}
	var tok string
	switch kind {
	case "alg-none":
		tok = rawJWT(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}, claims) + "."
	case "hmac-pubkey":
		// The classic confusion attack: HS256 keyed with the issuer's
		// public key, which anyone can fetch.
		pub, _ := x509.MarshalPKIXPublicKey(key.Public())
		secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
		signing := rawJWT(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(signing))
		tok = signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	case "unknown-kid":
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tok = sign(ts, other, "not-a-known-key", claims)
	case "expired":
		claims["iat"], claims["nbf"], claims["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		tok = sign(ts, key, kid, claims)
	case "not-yet-valid":
		claims["nbf"], claims["exp"] = now.Add(time.Hour).Unix(), now.Add(2*time.Hour).Unix()
		tok = sign(ts, key, kid, claims)
	case "wrong-audience":
		claims["aud"] = "some-other-service"
		tok = sign(ts, key, kid, claims)
	case "untrusted-issuer":
		claims["iss"] = "https://issuer.invalid"
		tok = sign(ts, key, kid, claims)
	case "garbage":
		tok = "this-is-not-a-token"
	default:
		ts.Fatalf("forge-token: unknown kind %q", kind)
	}
	if err := os.WriteFile(out, []byte(tok+"\n"), 0o600); err != nil {
		ts.Fatalf("%v", err)
	}
}

// devKey reads the dev issuer's signing key from the data dir and its key
// id from the issuer's JWKS.
func devKey(ts *testscript.TestScript, dir string, r gateway.Ready) (crypto.Signer, string) {
	b, err := os.ReadFile(filepath.Join(dir, "dev-issuer-key.pem"))
	if err != nil {
		ts.Fatalf("read dev issuer key: %v", err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		ts.Fatalf("parse dev issuer key: %v", err)
	}
	ca, _ := os.ReadFile(r.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(r.API + "/dev/keys")
	if err != nil {
		ts.Fatalf("fetch JWKS: %v", err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
		ts.Fatalf("JWKS: %v", err)
	}
	return k.(crypto.Signer), set.Keys[0].KeyID
}

func sign(ts *testscript.TestScript, key crypto.Signer, kid string, claims map[string]any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		ts.Fatalf("signer: %v", err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		ts.Fatalf("sign: %v", err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func rawJWT(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
}
