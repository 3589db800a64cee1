package downstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/auth/authtest"
	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// authEnv is a server with authentication and the key its tokens are
// signed with.
type authEnv struct {
	*testEnv
	key *authtest.Key
}

// startAuthServer starts a server whose tokens are HS256 with a fresh
// key (a real verifier), with ac's other settings.
func startAuthServer(t *testing.T, ac AuthConfig) *authEnv {
	t.Helper()
	key := authtest.NewKey(t, auth.AlgHS256, "")
	if ac.Verifier == nil {
		v, err := auth.New(auth.Config{Keys: auth.Keys{HMACSecret: key.Secret}, Audience: "marketgate"})
		if err != nil {
			t.Fatal(err)
		}
		ac.Verifier = v
	}
	if ac.NodeID == "" {
		ac.NodeID = "n1"
	}
	return &authEnv{testEnv: startServer(t, Config{Auth: &ac}), key: key}
}

// token signs claims for user sub, valid for ttl, with kv added (as
// claims' key, value pairs).
func (e *authEnv) token(t *testing.T, sub string, ttl time.Duration, kv ...any) string {
	t.Helper()
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix(), "aud": "marketgate"}
	for i := 0; i < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return e.key.Sign(t, c)
}

// authenticate sends an auth command and checks its reply.
func authenticate(t *testing.T, c *downstreamtest.Client, token, sub string) {
	t.Helper()
	c.Send(fmt.Sprintf(`{"op":"auth","id":"a","token":%q}`, token))
	var r struct {
		ID     string     `json:"id"`
		Result authReply  `json:"result"`
		Error  *nativeErr `json:"error"`
	}
	b := c.Next()
	if err := json.Unmarshal(b, &r); err != nil || r.ID != "a" || r.Error != nil || r.Result.User != sub || r.Result.TTL <= 0 {
		t.Fatalf("auth reply %s; want the result for user %q", b, sub)
	}
}

type nativeErr struct {
	Code    string   `json:"code"`
	Msg     string   `json:"msg"`
	Streams []string `json:"streams"`
}

// expectCloseWith reads until the close frame and checks its code and
// that its reason contains reason.
func expectCloseWith(t *testing.T, c *downstreamtest.Client, code ws.StatusCode, reason string) {
	t.Helper()
	for {
		_, err := c.Read(downstreamtest.Timeout)
		var ce wsutil.ClosedError
		if errors.As(err, &ce) {
			if ce.Code != code || !strings.Contains(ce.Reason, reason) {
				t.Fatalf("closed with %d %q; want %d with %q", ce.Code, ce.Reason, code, reason)
			}
			return
		}
		if err != nil {
			t.Fatalf("read until close: %v", err)
		}
	}
}

func TestAuthRequired(t *testing.T) {
	env := startAuthServer(t, AuthConfig{Required: true, Anonymous: auth.Patterns{"*"}, Timeout: 300 * time.Millisecond})
	t.Run("no auth command in time", func(t *testing.T) {
		c := downstreamtest.Dial(t, env.url+"/ws")
		expectCloseWith(t, c, StatusUnauthorized, "no auth command in time")
	})
	t.Run("first command not auth", func(t *testing.T) {
		c := downstreamtest.Dial(t, env.url+"/ws")
		c.Send(`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade"]}`)
		expectCloseWith(t, c, StatusUnauthorized, "authenticate first")
	})
	t.Run("unreadable first command", func(t *testing.T) {
		c := downstreamtest.Dial(t, env.url+"/ws")
		c.Send(`{"op":`)
		expectCloseWith(t, c, StatusUnauthorized, "authenticate first")
	})
	t.Run("auth in time", func(t *testing.T) {
		c := downstreamtest.Dial(t, env.url+"/ws")
		authenticate(t, c, env.token(t, "42", time.Hour), "42")
		// The deadline passes: the connection stays.
		time.Sleep(400 * time.Millisecond)
		c.Send(`{"op":"ping","id":2}`)
		expectJSON(t, c, `{"id":2,"result":"pong"}`)
	})
	t.Run("dialect without token", func(t *testing.T) {
		c := downstreamtest.Dial(t, env.url+"/binance/ws/btcusdt@trade")
		expectCloseWith(t, c, StatusUnauthorized, "token required")
	})
	st := env.srv.Stats()
	if st.Auth["timeout"] != 1 || st.Auth["missing"] != 3 || st.Auth["ok"] != 1 || st.Closed["unauthorized"] != 4 {
		t.Errorf("Stats: auth %v, closed %v; want 1 timeout, 3 missing, 1 ok, 4 closed unauthorized", st.Auth, st.Closed)
	}
}

func TestAuthRefused(t *testing.T) {
	env := startAuthServer(t, AuthConfig{Anonymous: auth.Patterns{"*"}})
	other := authtest.NewKey(t, auth.AlgHS256, "")
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"bad signature", other.Sign(t, jwt.MapClaims{"sub": "1", "exp": time.Now().Add(time.Hour).Unix(), "aud": "marketgate"}), "bad signature"},
		{"wrong audience", env.key.Sign(t, jwt.MapClaims{"sub": "1", "exp": time.Now().Add(time.Hour).Unix(), "aud": "x"}), "audience"},
		{"malformed", "abc.def", "malformed"},
		{"expired", env.token(t, "1", -time.Minute), "token expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := downstreamtest.Dial(t, env.url+"/ws")
			c.Send(fmt.Sprintf(`{"op":"auth","id":1,"token":%q}`, tc.token))
			expectCloseWith(t, c, StatusUnauthorized, tc.reason)
		})
		t.Run("dialect "+tc.name, func(t *testing.T) {
			c := downstreamtest.Dial(t, env.url+"/binance/ws?token="+tc.token)
			expectCloseWith(t, c, StatusUnauthorized, tc.reason)
		})
	}
	st := env.srv.Stats()
	if st.Auth["invalid"] != 6 || st.Auth["expired"] != 2 {
		t.Errorf("Stats.Auth = %v; want 6 invalid, 2 expired", st.Auth)
	}
}

// TestAuthForbidden checks that a subscribe naming streams the token does
// not allow is refused whole, naming them, and that commands sent right
// behind the auth command wait for it.
func TestAuthForbidden(t *testing.T) {
	env := startAuthServer(t, AuthConfig{Anonymous: auth.Patterns{"binance:*@trade"}})
	c := downstreamtest.Dial(t, env.url+"/ws")
	// Anonymous: trades only.
	c.Send(`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade","binance:btcusdt@bookTicker"]}`)
	expectJSON(t, c, `{"id":1,"error":{"code":"forbidden","msg":"anonymous connections may not subscribe these streams; authenticate with a token that allows them","streams":["binance:btcusdt@bookTicker"]}}`)
	c.Send(`{"op":"list","id":2}`)
	expectJSON(t, c, `{"id":2,"result":{"streams":[]}}`)

	// A token for ETH only; the subscribe sent right behind the auth
	// command is answered after it, under the new claims.
	tok := env.token(t, "7", time.Hour, "streams", []string{"binance:ethusdt@*"})
	c.Send(fmt.Sprintf(`{"op":"auth","id":"a","token":%q}`, tok))
	c.Send(`{"op":"subscribe","id":3,"streams":["binance:ethusdt@bookTicker","binance:btcusdt@trade"]}`)
	c.Send(`{"op":"subscribe","id":4,"streams":["binance:ethusdt@bookTicker"]}`)
	var r struct {
		ID     string    `json:"id"`
		Result authReply `json:"result"`
	}
	if b := c.Next(); json.Unmarshal(b, &r) != nil || r.ID != "a" || r.Result.User != "7" {
		t.Fatalf("got %s; want the auth reply first", b)
	}
	expectJSON(t, c, `{"id":3,"error":{"code":"forbidden","msg":"the connection's token does not allow these streams","streams":["binance:btcusdt@trade"]}}`)
	expectJSON(t, c, `{"id":4,"result":{"streams":["binance:ethusdt@bookTicker"]}}`)

	d := downstreamtest.Dial(t, env.url+"/binance/ws?token="+tok)
	d.Send(`{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}`)
	b := d.Next()
	if !strings.Contains(string(b), `"code":2`) || !strings.Contains(string(b), "forbidden") || !strings.Contains(string(b), "btcusdt@trade") {
		t.Errorf("dialect SUBSCRIBE of a forbidden stream: %s; want error code 2 naming it as forbidden", b)
	}
	u := downstreamtest.Dial(t, env.url+"/binance/ws/btcusdt@bookTicker?token="+tok)
	expectCloseWith(t, u, ws.StatusPolicyViolation, "forbidden: binance:btcusdt@bookTicker")
	if n := env.srv.Stats().Auth["forbidden"]; n != 4 {
		t.Errorf("Stats.Auth[forbidden] = %d; want 4", n)
	}
}

// TestAuthRefresh checks that a new token on the same connection applies
// its claims (streams no longer allowed end with a notice each), that it
// carries the connection past the old token's expiry, that a token of
// another user closes the connection, and that a connection whose token
// expires is closed with 4003.
func TestAuthRefresh(t *testing.T) {
	env := startAuthServer(t, AuthConfig{Anonymous: auth.Patterns{}})
	c := downstreamtest.Dial(t, env.url+"/ws")
	first := time.Now().Add(2 * time.Second)
	authenticate(t, c, env.key.Sign(t, jwt.MapClaims{"sub": "9", "exp": first.Unix(), "aud": "marketgate", "streams": []string{"binance:*"}}), "9")
	c.Send(`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade","binance:btcusdt@bookTicker"]}`)
	expectJSON(t, c, `{"id":1,"result":{"streams":["binance:btcusdt@trade","binance:btcusdt@bookTicker"]}}`)

	authenticate(t, c, env.token(t, "9", time.Hour, "streams", []string{"binance:*@trade"}), "9")
	expectJSON(t, c, `{"stream":"binance:btcusdt@bookTicker","error":{"code":"forbidden","msg":"the connection's token no longer allows this stream"}}`)
	c.Send(`{"op":"list","id":2}`)
	expectJSON(t, c, `{"id":2,"result":{"streams":["binance:btcusdt@trade"]}}`)
	env.waitSubscribers(t, "binance:btcusdt@trade", 1)
	if _, wanted := env.src.state("binance:btcusdt@bookTicker"); wanted {
		t.Error("bookTicker still wanted from the source after its only subscriber lost it")
	}

	// Past the first token's exp (seconds, so up to a second later) the
	// connection lives on the second.
	for time.Now().Before(first.Add(1500 * time.Millisecond)) {
		time.Sleep(100 * time.Millisecond)
	}
	c.Send(`{"op":"ping","id":3}`)
	expectJSON(t, c, `{"id":3,"result":"pong"}`)

	c.Send(fmt.Sprintf(`{"op":"auth","id":4,"token":%q}`, env.token(t, "10", time.Hour)))
	expectCloseWith(t, c, StatusUnauthorized, "another user")

	// A token that expires without a new one: 4003.
	e := downstreamtest.Dial(t, env.url+"/ws")
	authenticate(t, e, env.token(t, "11", 2*time.Second), "11")
	expectCloseWith(t, e, StatusTokenExpired, "token expired")
	st := env.srv.Stats()
	if st.Auth["refreshed"] != 1 || st.Auth["connection_expired"] != 1 || st.Closed["token_expired"] != 1 {
		t.Errorf("Stats: auth %v, closed %v; want 1 refreshed, 1 connection_expired, 1 closed token_expired", st.Auth, st.Closed)
	}
}

// TestAuthUserLimit checks the conns claim on one node, the user shown in
// the clients list, and the kick of all a user's connections.
func TestAuthUserLimit(t *testing.T) {
	lim := &auth.Memory{}
	env := startAuthServer(t, AuthConfig{Anonymous: auth.Patterns{"*"}, Limiter: lim})
	tok := env.token(t, "alice", time.Hour, "conns", 2)
	a := downstreamtest.Dial(t, env.url+"/ws")
	authenticate(t, a, tok, "alice")
	b := downstreamtest.Dial(t, env.url+"/binance/ws?token="+tok)
	b.Send(`{"method":"LIST_SUBSCRIPTIONS","id":1}`)
	expectJSON(t, b, `{"result":[],"id":1}`)
	c := downstreamtest.Dial(t, env.url+"/ws")
	c.Send(fmt.Sprintf(`{"op":"auth","id":1,"token":%q}`, tok))
	expectCloseWith(t, c, StatusUserConnLimit, "2 connections")
	d := downstreamtest.Dial(t, env.url+"/binance/ws?token="+tok)
	expectCloseWith(t, d, StatusUserConnLimit, "2 connections")
	// A refresh of a counted connection counts nothing new.
	authenticate(t, a, tok, "alice")

	page, _ := env.srv.Clients(0, 0)
	users := 0
	for _, ci := range page {
		if ci.User == "alice" {
			users++
		}
	}
	if users != 2 {
		t.Errorf("clients list shows %d connections of alice; want 2: %+v", users, page)
	}
	if n := env.srv.DisconnectUser("alice", ""); n != 2 {
		t.Errorf("DisconnectUser = %d; want 2", n)
	}
	expectCloseWith(t, a, ws.StatusPolicyViolation, OperatorCloseReason)
	expectCloseWith(t, b, ws.StatusPolicyViolation, OperatorCloseReason)
	waitfor.Cond(t, 5*time.Second, func() error {
		if n := lim.Count("alice"); n != 0 {
			return fmt.Errorf("alice counted %d times after her connections closed", n)
		}
		return nil
	})
	e := downstreamtest.Dial(t, env.url+"/ws")
	authenticate(t, e, tok, "alice")
	if n := env.srv.Stats().Auth["over_limit"]; n != 2 {
		t.Errorf("Stats.Auth[over_limit] = %d; want 2", n)
	}
}

// TestAuthUserLimitAcrossNodes checks the conns claim counted for two
// servers sharing one real Redis.
func TestAuthUserLimitAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	key := authtest.NewKey(t, auth.AlgHS256, "")
	v, err := auth.New(auth.Config{Keys: auth.Keys{HMACSecret: key.Secret}})
	if err != nil {
		t.Fatal(err)
	}
	node := func(id string) *authEnv {
		opt, err := redis.ParseURL(rs.URL())
		if err != nil {
			t.Fatal(err)
		}
		rc := redis.NewClient(opt)
		t.Cleanup(func() { rc.Close() })
		lim, err := auth.NewRedis(auth.RedisConfig{Client: rc})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- lim.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		e := startAuthServer(t, AuthConfig{Verifier: v, Limiter: lim, NodeID: id, Anonymous: auth.Patterns{"*"}})
		e.key = key
		return e
	}
	n1, n2 := node("n1"), node("n2")
	tok := n1.token(t, "bob", time.Hour, "conns", 1)
	a := downstreamtest.Dial(t, n1.url+"/ws")
	authenticate(t, a, tok, "bob")
	b := downstreamtest.Dial(t, n2.url+"/ws")
	b.Send(fmt.Sprintf(`{"op":"auth","id":1,"token":%q}`, tok))
	expectCloseWith(t, b, StatusUserConnLimit, "1 connections")

	// bob's connection on n1 ends: n2 takes him (the release reaches Redis
	// through n1's limiter).
	a.Close()
	waitfor.Cond(t, 10*time.Second, func() error {
		c, err := downstreamtest.TryDial(n2.url+"/ws", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		c.T = t
		c.Send(fmt.Sprintf(`{"op":"auth","id":1,"token":%q}`, tok))
		p, err := c.Read(downstreamtest.Timeout)
		if err != nil {
			return fmt.Errorf("not yet: %v", err)
		}
		if !strings.Contains(string(p), `"user":"bob"`) {
			return fmt.Errorf("reply %s", p)
		}
		return nil
	})
}
