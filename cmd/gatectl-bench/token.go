package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// tokenSource mints tokens from the --dev gateway's embedded issuer.
type tokenSource struct {
	url    string // the issuer's token endpoint
	client *http.Client
}

func newTokenSource(apiURL, caFile string) (*tokenSource, error) {
	c, err := newHTTPClient(caFile)
	if err != nil {
		return nil, err
	}
	return &tokenSource{url: strings.TrimRight(apiURL, "/") + "/dev/token", client: c}, nil
}

// mint returns a fresh token for sub. Each measurement mints its own, so
// no token outlives its default lifetime however long the run takes. The
// token is a credential: it goes to clients through their environment or
// connection config only, never to output.
func (t *tokenSource) mint(ctx context.Context, sub string) (string, error) {
	body, err := json.Marshal(map[string]string{"sub": sub})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("mint a dev token for %q: %w", sub, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("mint a dev token for %q: read the answer: %w", sub, err)
	}
	if resp.StatusCode != http.StatusOK {
		// The body of a refusal is an OAuth error, never a token.
		return "", fmt.Errorf("mint a dev token for %q: %s: %s", sub, resp.Status, strings.TrimSpace(string(raw)))
	}
	var ans struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil || ans.AccessToken == "" {
		return "", fmt.Errorf("mint a dev token for %q: the answer has no access_token", sub)
	}
	return ans.AccessToken, nil
}
