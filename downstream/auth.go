package downstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/auth"
)

// Close codes of authentication (RFC 6455 §7.4.2 leaves 4000-4999 to
// applications; the README documents each).
const (
	// StatusUnauthorized closes a connection whose token is missing (when
	// one is required), malformed, badly signed, for another audience or
	// issuer, expired when presented, or for another user than the
	// connection's. A client should get a new token before it reconnects.
	StatusUnauthorized ws.StatusCode = 4001
	// StatusTokenExpired closes a connection whose token expired without
	// a new one: reconnect with a fresh token.
	StatusTokenExpired ws.StatusCode = 4003
	// StatusUserConnLimit closes a connection whose user holds as many
	// connections (in the whole cluster) as the token's conns claim
	// allows.
	StatusUserConnLimit ws.StatusCode = 4029
)

// CodeForbidden is the error code of a subscribe naming streams that the
// connection's token (or the anonymous set) does not allow, and of the
// notice that ends a subscribed stream a refreshed token no longer allows.
const CodeForbidden = "forbidden"

// TokenVerifier checks a connection token ([auth.Verifier] is one). Verify
// may wait for the network (a JWKS fetch); the server calls it off its
// workers, with a deadline.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Claims, error)
}

// AuthConfig turns authentication on: browsers present connection tokens
// (native: {"op":"auth","token":…}; the Binance dialect: ?token= in the
// URL), and what each may subscribe follows from its token.
type AuthConfig struct {
	// Verifier checks tokens; nil: no token is accepted (an auth command
	// is refused), and every client is anonymous.
	Verifier TokenVerifier
	// Limiter counts each user's connections against the token's conns
	// claim; nil: the claim is not enforced.
	Limiter auth.ConnLimiter
	// Required closes, with [StatusUnauthorized], a native connection
	// whose first command is not auth or that sends none within Timeout,
	// and a dialect connection without ?token=.
	Required bool
	// Anonymous are the streams a client without a token, or with a token
	// without a streams claim, may subscribe. Nil allows none.
	Anonymous auth.Patterns
	// Timeout bounds, when Required, the time from the upgrade to the
	// auth command, and always the time a token's verification (JWKS
	// fetch) and user count (Redis) may take. Default 5 s.
	Timeout time.Duration
	// NodeID names this node in the ids of its connections that the
	// Limiter counts (they must be unique in the cluster); required with
	// a Limiter.
	NodeID string
	// Workers is how many goroutines verify tokens and count users, off
	// the connection workers. Default 8.
	Workers int
}

// authQueue bounds the auth commands waiting for an auth worker; a
// client whose command finds it full is closed with 1013.
const authQueue = 1024

// Bounds of the commands a client sends while its auth command is being
// checked: they wait, in order, and run after it. Beyond them the
// connection is closed with 1008.
const (
	maxHeldCommands = 16
	maxHeldBytes    = 64 << 10
)

// session is what a connection's token gave it; immutable, replaced
// whole on refresh.
type session struct {
	sub string
	// allow are the streams it may subscribe; nil: the anonymous set.
	allow auth.Patterns
	exp   time.Time
	// counted reports that the Limiter counts the connection under sub.
	counted bool
}

// authState is a connection's authentication state beyond its session.
// Only code holding conn.rmu touches held and busy (the read task and the
// auth worker that has taken rmu); mu guards the timers.
type authState struct {
	// busy: an auth command is being checked; commands are held.
	busy      bool
	held      [][]byte
	heldBytes int

	mu       sync.Mutex
	deadline *time.Timer // Required: the auth command must come by then
	expiry   *time.Timer // closes the connection at its token's exp
}

// authResults are the bounded labels auth outcomes are counted under.
var authResults = []string{
	"ok",                 // a token accepted on a connection without one
	"refreshed",          // a new token accepted on a connection with one
	"invalid",            // malformed, bad signature, wrong audience or issuer, another user's
	"expired",            // presented after its exp
	"over_limit",         // the user holds the conns its token allows
	"limiter_error",      // the user count could not be read; the connection was let in
	"missing",            // Required, and the first command was not auth (or no ?token=)
	"timeout",            // Required, and no auth command came in time
	"connection_expired", // a connection closed at its token's exp
	"forbidden",          // a subscribe refused for streams the token does not allow
	"disabled",           // an auth command on a server without a verifier
}

// anyStream allows every stream: a server without AuthConfig.
var anyStream = auth.Patterns{"*"}

// authDefaults fills in a's zero fields.
func (a *AuthConfig) setDefaults() error {
	if a.Timeout == 0 {
		a.Timeout = 5 * time.Second
	}
	if a.Workers == 0 {
		a.Workers = 8
	}
	if a.Timeout < 0 || a.Workers < 0 {
		return errors.New("downstream: config: Auth.Timeout and Auth.Workers must not be negative")
	}
	if a.Limiter != nil && a.NodeID == "" {
		return errors.New("downstream: config: Auth.NodeID is required with Auth.Limiter")
	}
	if a.Required && a.Verifier == nil {
		return errors.New("downstream: config: Auth.Required needs a Verifier")
	}
	return nil
}

// allowed returns the streams c may subscribe.
func (c *conn) allowed() auth.Patterns {
	a := c.srv.cfg.Auth
	if a == nil {
		return anyStream
	}
	if s := c.sess.Load(); s != nil && s.allow != nil {
		return s.allow
	}
	return a.Anonymous
}

// user returns the sub of c's token, "" without one.
func (c *conn) user() string {
	if s := c.sess.Load(); s != nil {
		return s.sub
	}
	return ""
}

// limitID names c for the Limiter, uniquely in the cluster.
func (s *Server) limitID(id uint64) string {
	return s.cfg.Auth.NodeID + "/" + strconv.FormatUint(id, 10)
}

// startAuthTimer arms, when a token is required, the deadline of a new
// native connection's auth command.
func (c *conn) startAuthTimer() {
	a := c.srv.cfg.Auth
	if a == nil || !a.Required {
		return
	}
	c.awaitingAuth.Store(true)
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	c.auth.deadline = time.AfterFunc(a.Timeout, func() {
		if c.awaitingAuth.Load() && c.state.Load() == stateOpen {
			c.srv.metrics.authResult("timeout")
			c.closeWith(StatusUnauthorized, "no auth command in time")
		}
	})
}

// stopAuthTimers stops c's timers; finish calls it.
func (c *conn) stopAuthTimers() {
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	for _, t := range []*time.Timer{c.auth.deadline, c.auth.expiry} {
		if t != nil {
			t.Stop()
		}
	}
}

// releaseCount stops counting connection id, with session sess, for its
// user, if it was: a connection's, or a handshake's that never became one.
func (s *Server) releaseCount(id uint64, sess *session) {
	if sess != nil && sess.counted && s.cfg.Auth != nil && s.cfg.Auth.Limiter != nil {
		s.cfg.Auth.Limiter.Release(sess.sub, s.limitID(id))
	}
}

// holdCommand keeps p for later when an auth command of c is being
// checked, and reports whether it did (or closed c for holding too much).
// The read task calls it, holding rmu.
func (c *conn) holdCommand(p []byte) bool {
	if !c.auth.busy {
		return false
	}
	if len(c.auth.held) >= maxHeldCommands || c.auth.heldBytes+len(p) > maxHeldBytes {
		c.closeWith(ws.StatusPolicyViolation, "too many commands while the token is checked")
		return true
	}
	c.auth.held = append(c.auth.held, append([]byte(nil), p...))
	c.auth.heldBytes += len(p)
	return true
}

// authReply is the native auth command's result.
type authReply struct {
	// User is the token's sub.
	User string `json:"user"`
	// Expires is the token's exp (Unix seconds), TTL the seconds left.
	Expires int64 `json:"expires"`
	TTL     int64 `json:"ttl"`
}

// startAuth begins checking a native auth command's token: off the read
// task, on an auth worker, with c's later commands held until the
// outcome. It runs on the read task (rmu held).
func (c *conn) startAuth(id json.RawMessage, token string) bool {
	c.awaitingAuth.Store(false)
	a := c.srv.cfg.Auth
	if a == nil || a.Verifier == nil {
		c.srv.metrics.authResult("disabled")
		replyNative(c, id, nil, &nativeError{Code: CodeBadRequest, Msg: "this gateway does not take tokens"})
		return false
	}
	if token == "" {
		replyNative(c, id, nil, &nativeError{Code: CodeBadRequest, Msg: `"token" must be a non-empty string`})
		return false
	}
	c.auth.busy = true
	if !c.srv.authPool.submit(func() { c.runAuth(id, token) }) {
		c.auth.busy = false
		c.closeWith(statusTryAgainLater, "busy checking tokens; try again")
		return false
	}
	return true
}

// checkToken verifies token and, for a token with a conns limit on a
// connection not yet counted for its user, counts c. It may wait (JWKS,
// Redis); it runs off the connection workers. result is the outcome's
// label, and code and reason the close to send when it is a refusal.
func (s *Server) checkToken(ctx context.Context, id uint64, prev *session, token string) (sess *session, result string, code ws.StatusCode, reason string) {
	a := s.cfg.Auth
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	claims, err := a.Verifier.Verify(ctx, token)
	switch {
	case errors.Is(err, auth.ErrExpired):
		return nil, "expired", StatusUnauthorized, "token expired"
	case err != nil:
		return nil, "invalid", StatusUnauthorized, truncateReason(err.Error())
	case prev != nil && prev.sub != claims.Subject:
		return nil, "invalid", StatusUnauthorized, "token for another user (sub) than the connection's"
	}
	sess = &session{sub: claims.Subject, allow: claims.Streams, exp: claims.Expiry}
	result = "ok"
	if prev != nil {
		result, sess.counted = "refreshed", prev.counted
	}
	if a.Limiter != nil && claims.Conns > 0 && claims.Subject != "" && !sess.counted {
		ok, err := a.Limiter.Acquire(ctx, claims.Subject, s.limitID(id), claims.Conns)
		switch {
		case err != nil:
			// Let in: an unreachable Redis must not lock every user out.
			s.log.Warn("user connection count unavailable; connection let in", "conn", id, "err", err)
			result = "limiter_error"
		case !ok:
			return nil, "over_limit", StatusUserConnLimit, fmt.Sprintf("this user holds the %d connections its token allows", claims.Conns)
		default:
			sess.counted = true
		}
	}
	return sess, result, 0, ""
}

// runAuth checks a native auth command's token, applies the outcome, and
// runs the commands held meanwhile. It runs on an auth worker.
func (c *conn) runAuth(id json.RawMessage, token string) {
	defer c.recoverTask("auth")
	prev := c.sess.Load()
	sess, result, code, reason := c.srv.checkToken(context.Background(), c.id, prev, token)
	c.srv.metrics.authResult(result)

	// Commands run one at a time: the read task waits meanwhile.
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if sess == nil {
		c.auth.busy = false
		c.closeWith(code, reason)
		return
	}
	if !c.setSession(sess) {
		c.auth.busy = false
		return
	}
	replyNative(c, id, authReply{User: sess.sub, Expires: sess.exp.Unix(), TTL: int64(max(0, math.Ceil(time.Until(sess.exp).Seconds())))}, nil)
	c.revokeForbidden()
	c.runHeld()
}

// setSession makes sess c's session and arms the close at its expiry. It
// reports false, undoing its count, when c closed meanwhile.
func (c *conn) setSession(sess *session) bool {
	if c.state.Load() != stateOpen {
		if !c.sess.Load().isCountedAs(sess) {
			c.srv.releaseCount(c.id, sess)
		}
		return false
	}
	c.sess.Store(sess)
	if c.state.Load() == stateClosed {
		// finish ran meanwhile and may have read the old session.
		c.srv.releaseCount(c.id, sess)
		return false
	}
	c.auth.mu.Lock()
	if c.auth.deadline != nil {
		c.auth.deadline.Stop()
	}
	if c.auth.expiry != nil {
		c.auth.expiry.Stop()
	}
	c.auth.expiry = time.AfterFunc(time.Until(sess.exp), func() {
		if c.sess.Load() == sess && c.state.Load() == stateOpen {
			c.srv.metrics.authResult("connection_expired")
			c.closeWith(StatusTokenExpired, "token expired")
		}
	})
	c.auth.mu.Unlock()
	return true
}

// isCountedAs reports whether s already holds the count sess has.
func (s *session) isCountedAs(sess *session) bool {
	return s != nil && s.counted && sess.counted && s.sub == sess.sub
}

// revokeForbidden ends the streams c is subscribed to that its patterns
// no longer allow, with a forbidden notice for each.
func (c *conn) revokeForbidden() {
	gone := c.allowed().Refused(c.subscribed())
	if len(gone) == 0 {
		return
	}
	c.srv.unsubscribe(c, gone)
	c.setNormalized(gone, false)
	for _, k := range gone {
		c.enqueueReply(c.proto.streamForbidden(k))
	}
}

// runHeld runs the commands held while a token was checked, in order,
// until one of them starts another check (the rest wait again). rmu is
// held.
func (c *conn) runHeld() {
	msgs := c.auth.held
	c.auth.held, c.auth.heldBytes, c.auth.busy = nil, 0, false
	for i, m := range msgs {
		if c.state.Load() != stateOpen {
			return
		}
		c.proto.handleText(c, m)
		if c.auth.busy {
			rest := msgs[i+1:]
			c.auth.held = rest
			for _, r := range rest {
				c.auth.heldBytes += len(r)
			}
			return
		}
	}
}

// streamForbiddenNative frames the notice that ends a stream the token no
// longer allows.
func streamForbiddenNative(key string) []byte {
	b, _ := json.Marshal(struct {
		Stream string      `json:"stream"`
		Error  nativeError `json:"error"`
	}{key, nativeError{Code: CodeForbidden, Msg: "the connection's token no longer allows this stream"}})
	return textFrame(b)
}

// checkAllowed returns the forbidden error for keys that c may not
// subscribe, or nil.
func (c *conn) checkAllowed(keys []string) *nativeError {
	refused := c.allowed().Refused(keys)
	if len(refused) == 0 {
		return nil
	}
	c.srv.metrics.authResult("forbidden")
	msg := "the connection's token does not allow these streams"
	if c.sess.Load() == nil || c.sess.Load().allow == nil {
		msg = "anonymous connections may not subscribe these streams; authenticate with a token that allows them"
	}
	return &nativeError{Code: CodeForbidden, Msg: msg, Streams: clipKeys(refused)}
}

// Users returns, for each user with a connection on this node, how many
// it holds.
func (s *Server) Users() map[string]int {
	out := map[string]int{}
	for _, c := range s.snapshot() {
		if u := c.user(); u != "" && c.state.Load() == stateOpen {
			out[u]++
		}
	}
	return out
}

// DisconnectUser starts closing every open connection of user (the sub of
// their tokens) on this node, as [Server.Disconnect] closes one, and
// returns how many. It never blocks.
func (s *Server) DisconnectUser(user, reason string) int {
	if user == "" {
		return 0
	}
	if reason == "" {
		reason = OperatorCloseReason
	}
	n := 0
	for _, c := range s.snapshot() {
		if c.state.Load() == stateOpen && c.user() == user {
			c.logAt(slog.LevelInfo, "disconnected by operator", "reason", reason)
			c.closeWith(ws.StatusPolicyViolation, truncateReason(reason))
			n++
		}
	}
	return n
}

// dialectAuth checks the token of a dialect handshake (?token=) and the
// streams its URL names. It returns the session to give the connection,
// or how to refuse it once upgraded (a close code: a WebSocket client
// reads that better than an HTTP status).
func (s *Server) dialectAuth(r *http.Request, id uint64, rt route) (*session, func(*conn)) {
	a := s.cfg.Auth
	token := r.URL.Query().Get("token")
	var sess *session
	switch {
	case token == "" && a.Required:
		s.metrics.authResult("missing")
		return nil, func(c *conn) { c.closeWith(StatusUnauthorized, "token required: add ?token=<jwt> to the URL") }
	case token != "" && a.Verifier == nil:
		s.metrics.authResult("disabled")
		return nil, func(c *conn) { c.closeWith(StatusUnauthorized, "this gateway does not take tokens") }
	case token != "":
		var result string
		var code ws.StatusCode
		var reason string
		sess, result, code, reason = s.checkToken(r.Context(), id, nil, token)
		s.metrics.authResult(result)
		if sess == nil {
			return nil, func(c *conn) { c.closeWith(code, reason) }
		}
	}
	allow := a.Anonymous
	if sess != nil && sess.allow != nil {
		allow = sess.allow
	}
	if refused := allow.Refused(rt.initial); len(refused) > 0 {
		s.metrics.authResult("forbidden")
		return sess, func(c *conn) {
			c.closeWith(ws.StatusPolicyViolation, truncateReason("forbidden: "+strings.Join(clipKeys(refused), ",")))
		}
	}
	return sess, nil
}
