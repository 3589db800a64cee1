package main

import (
	"bytes"
	"context"
	"crypto"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/gateway"
)

// liveSettings are the settings a reload applies to the running node;
// a change of any other needs a restart.
var liveSettings = slices.Concat([]string{"log-level", "allowed-origins", "admin-token", "metrics-public", "auth-hmac-secret", "auth-public-key"}, limitSettings)

// limitSettings are the browsers' limits a reload applies
// (downstream.Limits).
var limitSettings = []string{"max-conns-per-ip", "max-streams-per-conn", "max-streams-per-ip", "max-streams-per-node", "max-commands-per-second"}

// reloader applies the configuration again on SIGHUP: the same command
// line, the environment and the --config file read anew. What can change
// live changes; what cannot is named in the log as needing a restart. An
// invalid configuration changes nothing. The node never stops for it.
type reloader struct {
	args    []string                 // the command line, as at start
	environ func() map[string]string // reads the environment
	level   *slog.LevelVar           // the loggers' level
	log     *slog.Logger
	g       *gateway.Gateway // set before run
	// cur is the configuration in force: the start's, with each live
	// change applied.
	cur config
}

// run reloads at each signal from hup until ctx ends.
func (r *reloader) run(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload()
		}
	}
}

// reload reads the configuration again and applies what changed, returning
// the settings applied and those that need a restart. It logs both, or
// why the configuration was refused.
func (r *reloader) reload() (applied, restart []string) {
	next, err := parseConfig(r.args, r.environ(), io.Discard)
	if err != nil {
		r.log.Error("reload refused: the configuration is invalid; the running one is kept", "err", err)
		return nil, nil
	}
	for _, name := range changedSettings(r.cur, next) {
		if !slices.Contains(liveSettings, name) {
			restart = append(restart, name)
			continue
		}
		if err := r.apply(name, next); err != nil {
			r.log.Error("reload: a setting could not be applied; it keeps its value", "setting", name, "err", err)
			restart = append(restart, name)
			continue
		}
		applied = append(applied, name)
	}
	if len(applied) == 0 && len(restart) == 0 {
		r.log.Info("configuration reloaded: nothing changed")
		return nil, nil
	}
	if len(applied) > 0 {
		attrs := []any{"changed", strings.Join(applied, ","), "log_level", r.level.Level().String()}
		if slices.Contains(applied, "allowed-origins") {
			attrs = append(attrs, "allowed_origins", strings.Join(r.cur.allowedOrigins, ","))
		}
		r.log.Info("configuration reloaded", attrs...)
	}
	if len(restart) > 0 {
		r.log.Warn("changed settings that take effect only after a restart", "settings", strings.Join(restart, ","))
	}
	return applied, restart
}

// apply makes the setting name of next the running one, and records it
// in r.cur.
func (r *reloader) apply(name string, next config) error {
	switch {
	case name == "log-level":
		r.level.Set(next.logLevel)
		r.cur.logLevel = next.logLevel
	case name == "allowed-origins":
		r.g.SetAllowedOrigins(next.allowedOrigins)
		r.cur.allowedOrigins = next.allowedOrigins
	case name == "admin-token":
		if err := r.g.SetAdminToken(next.adminToken); err != nil {
			return err
		}
		r.cur.adminToken = next.adminToken
	case name == "metrics-public":
		r.g.SetMetricsPublic(next.metricsPublic)
		r.cur.metricsPublic = next.metricsPublic
	case slices.Contains(limitSettings, name):
		b := next.browsers
		if err := r.g.SetBrowserLimits(downstream.Limits{MaxConnsPerIP: b.MaxConnsPerIP, MaxStreamsPerConn: b.MaxStreamsPerConn,
			MaxStreamsPerIP: b.MaxStreamsPerIP, MaxStreams: b.MaxStreams, MaxCommandsPerSecond: b.MaxCommandsPerSecond}); err != nil {
			return err
		}
		// All five are set at once: record them all.
		r.cur.browsers.MaxConnsPerIP, r.cur.browsers.MaxStreamsPerConn, r.cur.browsers.MaxStreamsPerIP = b.MaxConnsPerIP, b.MaxStreamsPerConn, b.MaxStreamsPerIP
		r.cur.browsers.MaxStreams, r.cur.browsers.MaxCommandsPerSecond = b.MaxStreams, b.MaxCommandsPerSecond
		for _, n := range limitSettings {
			r.cur.values[n] = next.values[n]
		}
	case name == "auth-hmac-secret" || name == "auth-public-key":
		v := r.g.Verifier()
		if v == nil || next.auth == nil {
			return errNeedsRestart("browser authentication is turned on or off")
		}
		if err := v.SetKeys(next.auth.Verify.Keys); err != nil {
			return err
		}
		// Both keys are set at once: record both (in a copy: the
		// gateway was built from the old one).
		a := *r.cur.auth
		a.Verify.Keys = next.auth.Verify.Keys
		r.cur.auth = &a
		r.cur.values["auth-hmac-secret"], r.cur.values["auth-public-key"] = next.values["auth-hmac-secret"], next.values["auth-public-key"]
	}
	r.cur.values[name] = next.values[name]
	return nil
}

// errNeedsRestart is a live setting's change that this node cannot make
// live.
type errNeedsRestart string

func (e errNeedsRestart) Error() string { return string(e) + ": needs a restart" }

// changedSettings returns the settings whose values differ between cur
// and next, sorted by name. The token keys are compared as read, so that
// a key file (@FILE) rewritten in place counts as a change.
func changedSettings(cur, next config) []string {
	var out []string
	for name, v := range next.values {
		if cur.values[name] != v {
			out = append(out, name)
		}
	}
	ck, nk := authKeys(cur.auth), authKeys(next.auth)
	if !bytes.Equal(ck.HMACSecret, nk.HMACSecret) && !slices.Contains(out, "auth-hmac-secret") {
		out = append(out, "auth-hmac-secret")
	}
	if !sameKeys(ck.PublicKeys, nk.PublicKeys) && !slices.Contains(out, "auth-public-key") {
		out = append(out, "auth-public-key")
	}
	slices.Sort(out)
	return out
}

func authKeys(a *gateway.AuthConfig) auth.Keys {
	if a == nil {
		return auth.Keys{}
	}
	return a.Verify.Keys
}

// sameKeys reports whether a and b hold equal public keys in the same
// order.
func sameKeys(a, b []crypto.PublicKey) bool {
	return slices.EqualFunc(a, b, func(x, y crypto.PublicKey) bool {
		e, ok := x.(interface{ Equal(crypto.PublicKey) bool })
		return ok && e.Equal(y)
	})
}
