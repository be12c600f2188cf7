package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gatectl/gatectl/pkg/api"
	"github.com/gatectl/gatectl/pkg/audit"
	"github.com/gatectl/gatectl/pkg/identity"
	"github.com/gatectl/gatectl/pkg/policy"
)

// apiHandler is the gateway's HTTPS API. Every /v1 route needs a verified
// token; the dev issuer under /dev exists only in --dev.
func (g *Gateway) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", g.serveHealth)
	if g.dev != nil {
		mux.Handle("/dev/", http.StripPrefix("/dev", g.dev.Handler()))
	}
	mux.Handle("GET /v1/whoami", g.authed(g.serveWhoami))
	mux.Handle("GET /v1/targets", g.authed(g.serveTargets))
	mux.Handle("GET /v1/endpoints", g.authed(g.serveEndpoints))
	mux.Handle("GET /v1/policy/status", g.authed(g.admin(g.servePolicyStatus)))
	mux.Handle("GET /v1/audit", g.authed(g.auditor(g.serveAudit)))
	mux.Handle("GET /v1/audit/verify", g.authed(g.auditor(g.serveAuditVerify)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, api.CodeNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

type caller struct {
	principal policy.Principal
	policy    *policy.Policy
}

type callerKey struct{}

func callerOf(r *http.Request) caller { return r.Context().Value(callerKey{}).(caller) }

// authed verifies the bearer token against the live policy. Fail closed:
// no live policy, no token or a refused token — no handler runs.
func (g *Gateway) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pol := g.currentPolicy()
		if pol == nil {
			writeError(w, http.StatusServiceUnavailable, api.CodeInternal, "no policy is live yet; see the gateway log")
			return
		}
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(raw) == "" {
			g.recordRefusal(audit.Event{Action: "auth.refuse", Decision: "deny", Reason: "no token", PolicyCommit: pol.Commit,
				Detail: map[string]string{"via": "api", "route": r.URL.Path, "remote": r.RemoteAddr}}, "api", r.RemoteAddr)
			writeError(w, http.StatusUnauthorized, api.CodeAuth, "authentication required: send a bearer token (set GATECTL_TOKEN or --token-file)")
			return
		}
		pr, err := g.ident.Verify(r.Context(), pol, strings.TrimSpace(raw))
		if err != nil {
			reason := "token refused"
			var ae *identity.AuthError
			if errors.As(err, &ae) {
				reason = ae.Reason
			}
			g.recordRefusal(audit.Event{Action: "auth.refuse", Decision: "deny", Reason: reason, PolicyCommit: pol.Commit,
				Detail: map[string]string{"via": "api", "route": r.URL.Path, "remote": r.RemoteAddr, "token": identity.Fingerprint(raw)}}, "api", r.RemoteAddr)
			writeError(w, http.StatusUnauthorized, api.CodeAuth, "authentication failed: "+reason)
			return
		}
		g.record(audit.Event{Action: "auth.accept", Decision: "allow", Principal: pr.String(), PolicyCommit: pol.Commit,
			Detail: map[string]string{"via": "api", "route": r.URL.Path, "issuer": pr.Issuer}})
		ctx := context.WithValue(r.Context(), callerKey{}, caller{principal: pr, policy: pol})
		h(w, r.WithContext(ctx))
	})
}

// admin lets only the admins of gatectl.toml through.
func (g *Gateway) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := callerOf(r)
		if !c.policy.IsAdmin(c.principal) {
			g.refuseAPI(w, r, c, "only the admins of gatectl.toml [access] may do this")
			return
		}
		h(w, r)
	}
}

// auditor lets only auditors (and admins) through. A service account never
// reads the audit log, whatever its groups say.
func (g *Gateway) auditor(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := callerOf(r)
		switch {
		case c.principal.Kind == policy.KindService:
			g.refuseAPI(w, r, c, "service accounts may not read the audit log")
		case !c.policy.IsAuditor(c.principal):
			g.refuseAPI(w, r, c, "only the auditors or admins of gatectl.toml [access] may read the audit log")
		default:
			h(w, r)
		}
	}
}

func (g *Gateway) refuseAPI(w http.ResponseWriter, r *http.Request, c caller, why string) {
	g.record(audit.Event{Action: "api.refuse", Decision: "deny", Principal: c.principal.String(), Reason: why,
		PolicyCommit: c.policy.Commit, Detail: map[string]string{"route": r.URL.Path}})
	writeError(w, http.StatusForbidden, api.CodeDenied, "denied: "+why+" ("+c.principal.String()+")")
}

func (g *Gateway) serveHealth(w http.ResponseWriter, r *http.Request) {
	st := map[string]any{"ok": true}
	if p := g.currentPolicy(); p != nil {
		st["policy_commit"] = p.Commit
	} else {
		st["ok"] = false
	}
	writeJSON(w, http.StatusOK, st)
}

func (g *Gateway) serveWhoami(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	groups := c.principal.Groups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, http.StatusOK, api.Whoami{
		Principal: c.principal.String(), Kind: c.principal.Kind.String(), Name: c.principal.Name,
		Subject: c.principal.Subject, Issuer: c.principal.Issuer, Groups: groups,
		Admin: c.policy.IsAdmin(c.principal), Auditor: c.principal.Kind != policy.KindService && c.policy.IsAuditor(c.principal),
		PolicyCommit: c.policy.Commit,
	})
}

// serveTargets lists the targets the caller can reach, one row per target
// at the highest access any active grant gives.
func (g *Gateway) serveTargets(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	best := map[string]*policy.Grant{}
	for _, gr := range c.policy.ActiveGrants(c.principal, time.Now()) {
		if cur, ok := best[gr.Target]; !ok || gr.Access > cur.Access {
			best[gr.Target] = gr
		}
	}
	out := make([]api.Target, 0, len(best))
	for name, gr := range best {
		t := api.Target{Name: name, Access: gr.Access.String(), Grant: gr.ID}
		if tg := c.policy.Targets[name]; tg != nil {
			t.Kind = tg.Kind.String()
		}
		if !gr.Expires.IsZero() {
			e := gr.Expires
			t.Expires = &e
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) serveEndpoints(w http.ResponseWriter, r *http.Request) {
	var e api.Endpoints
	if g.cfg.Listen.Postgres != "off" {
		e.Postgres = g.cfg.Listen.Postgres
	}
	writeJSON(w, http.StatusOK, e)
}

func (g *Gateway) servePolicyStatus(w http.ResponseWriter, r *http.Request) {
	st := g.policy.Status()
	writeJSON(w, http.StatusOK, api.PolicyStatus{
		Source: st.Source, Branch: st.Branch,
		Live:        api.Commit{Hash: st.Live.Hash, Time: st.Live.Time, Subject: st.Live.Subject},
		LiveSince:   st.LiveSince,
		LastTried:   api.Commit{Hash: st.LastTried.Hash, Time: st.LastTried.Time, Subject: st.LastTried.Subject},
		LastTriedAt: st.LastTriedAt, LastError: st.LastError,
	})
}

// serveAudit streams matching events as JSON lines.
func (g *Gateway) serveAudit(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	q := r.URL.Query()
	f := audit.Filter{
		Principal: q.Get("principal"), Action: q.Get("action"), Target: q.Get("target"),
		Decision: q.Get("decision"), Session: q.Get("session"), Desc: q.Get("desc") == "true",
	}
	var err error
	parseTime := func(k string) time.Time {
		v := q.Get(k)
		if v == "" || err != nil {
			return time.Time{}
		}
		t, e := time.Parse(time.RFC3339Nano, v)
		if e != nil {
			err = errors.New(k + " must be an RFC 3339 time")
		}
		return t
	}
	parseInt := func(k string) int64 {
		v := q.Get(k)
		if v == "" || err != nil {
			return 0
		}
		n, e := strconv.ParseInt(v, 10, 64)
		if e != nil || n < 0 {
			err = errors.New(k + " must be a non-negative whole number")
		}
		return n
	}
	f.Since, f.Until = parseTime("since"), parseTime("until")
	f.AfterSeq, f.Limit = parseInt("after"), int(parseInt("limit"))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return
	}
	// Reading the audit log is itself audited, before it is read.
	g.record(audit.Event{Action: "audit.read", Decision: "allow", Principal: c.principal.String(), PolicyCommit: c.policy.Commit,
		Detail: map[string]string{"query": r.URL.RawQuery}})
	if err := g.audit.Flush(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "audit log: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	enc := json.NewEncoder(w)
	last := f.AfterSeq
	err = g.db.Audit().Scan(r.Context(), f, func(e audit.Event) error { last = max(last, e.Seq); return enc.Encode(e) })
	if err != nil {
		g.log.Error("audit scan", "err", err)
		return
	}
	if q.Get("follow") == "true" && !f.Desc {
		g.followAudit(w, r, c, f, last)
	}
}

// followAudit streams the events written after seq last as they come, in
// one response, so that following the log audits one read rather than a
// read per poll. It ends when the client goes, the gateway stops, the
// caller's token expires or the policy no longer makes the caller an
// auditor.
func (g *Gateway) followAudit(w http.ResponseWriter, r *http.Request, c caller, f audit.Filter, last int64) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		return
	}
	enc := json.NewEncoder(w)
	tick := time.NewTicker(auditFollowPoll)
	defer tick.Stop()
	for {
		flusher.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-g.stopping:
			return
		case <-tick.C:
		}
		if exp := c.principal.Expires; !exp.IsZero() && !time.Now().Before(exp) {
			return
		}
		if pol := g.currentPolicy(); pol == nil || !pol.IsAuditor(c.principal) {
			return
		}
		if err := g.audit.Flush(r.Context()); err != nil {
			return
		}
		f.AfterSeq, f.Limit = last, 0
		err := g.db.Audit().Scan(r.Context(), f, func(e audit.Event) error { last = max(last, e.Seq); return enc.Encode(e) })
		if err != nil {
			return
		}
	}
}

// auditFollowPoll is how often a followed audit stream looks for new events.
const auditFollowPoll = 500 * time.Millisecond

func (g *Gateway) serveAuditVerify(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	g.record(audit.Event{Action: "audit.verify", Decision: "allow", Principal: c.principal.String(), PolicyCommit: c.policy.Commit})
	if err := g.audit.Flush(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "audit log: "+err.Error())
		return
	}
	rep, err := audit.Verify(r.Context(), g.db.Audit())
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "verify: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, reportToAPI(rep))
}

func reportToAPI(rep audit.Report) api.VerifyReport {
	return api.VerifyReport{OK: rep.Problem == "", Events: rep.Events, FirstBad: rep.FirstBad, Problem: rep.Problem}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, api.Error{Error: msg, Code: code})
}
