package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// maxJWKSBytes bounds a JWKS answer.
const maxJWKSBytes = 1 << 20

// maxJWKSKeys bounds the keys kept from one JWKS.
const maxJWKSKeys = 100

// jwks caches the signing keys of a JWKS endpoint, by kid. A lookup of a
// kid not in the cache, or of any kid once the cache is maxAge old, fetches
// the set again, but at most once per every: other lookups meanwhile get
// the keys held. Concurrent lookups share one fetch.
type jwks struct {
	url    string
	client *http.Client
	every  time.Duration
	maxAge time.Duration
	now    func() time.Time
	log    *slog.Logger

	// mu guards the following fields.
	mu      sync.Mutex
	set     []jose.JSONWebKey // the last set fetched, signing keys only
	fetched time.Time         // when set was fetched (zero: never)
	tried   time.Time         // when the last fetch started (zero: never)
	// running is closed when the fetch in progress ends; nil when none
	// runs.
	running chan struct{}
}

// keys returns the keys of kid (every key when kid is empty), fetching the
// set first when the rules above say so.
func (j *jwks) keys(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	for {
		j.mu.Lock()
		found := j.matchLocked(kid)
		now := j.now()
		stale := j.fetched.IsZero() || now.Sub(j.fetched) >= j.maxAge || len(found) == 0
		mayFetch := j.tried.IsZero() || now.Sub(j.tried) >= j.every
		if !stale || (!mayFetch && j.running == nil) {
			j.mu.Unlock()
			if len(found) == 0 {
				return nil, fmt.Errorf("%w: key id %.40q not in the JWKS", errNoKey, kid)
			}
			return found, nil
		}
		if wait := j.running; wait != nil {
			j.mu.Unlock()
			select {
			case <-wait:
				continue // look again with what it brought
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: JWKS fetch: %w", errNoKey, ctx.Err())
			}
		}
		done := make(chan struct{})
		j.running, j.tried = done, now
		j.mu.Unlock()

		keys, err := j.fetch(ctx)
		j.mu.Lock()
		if err != nil {
			j.log.Warn("JWKS fetch failed; keeping the keys held", "url", j.url, "err", err)
		} else {
			j.set, j.fetched = keys, j.now()
		}
		found = j.matchLocked(kid)
		j.running = nil
		close(done)
		j.mu.Unlock()
		if len(found) == 0 {
			return nil, fmt.Errorf("%w: key id %.40q not in the JWKS", errNoKey, kid)
		}
		return found, nil
	}
}

// matchLocked returns the keys of kid; j.mu is held.
func (j *jwks) matchLocked(kid string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range j.set {
		if kid == "" || k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out
}

// fetch reads the set: each key is parsed by go-jose on its own, and one
// it cannot read, a private key, or a key whose use is not "sig" is
// skipped (logged) rather than failing the others.
func (j *jwks) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", j.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", j.url, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", j.url, maxJWKSBytes)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("GET %s: not a JWKS: %w", j.url, err)
	}
	var out []jose.JSONWebKey
	for i, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			j.log.Warn("JWKS: key skipped", "index", i, "err", err)
			continue
		}
		if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") || algOf(k.Key) == "" {
			j.log.Warn("JWKS: key skipped: not a public signing key of an accepted type", "index", i, "kid", k.KeyID)
			continue
		}
		if len(out) == maxJWKSKeys {
			j.log.Warn("JWKS: keys beyond the first ones skipped", "kept", maxJWKSKeys)
			break
		}
		out = append(out, k)
	}
	return out, nil
}
