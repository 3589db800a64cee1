package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/auth/authtest"
	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/redistest"
)

// TestKickUserAcrossNodes runs two gateways on one real Redis, connects
// the same user to both and another user to one, and checks that
// DELETE /api/v1/users/{user} on one node closes the user's connections
// on both (1008) and leaves the other user's.
func TestKickUserAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	_, simAddr := startSim(t, binancesim.Config{})
	key := authtest.NewKey(t, auth.AlgHS256, "")
	type node struct{ addr, admin string }
	start := func(id string) node {
		aln := listen(t)
		addr := startGateway(t, simAddr, Config{
			NodeID: id, Redis: rs.Options(), AdminListener: aln, AdminToken: "t0ken-t0ken-t0ken",
			Auth: &AuthConfig{Verify: auth.Config{Keys: auth.Keys{HMACSecret: key.Secret}}, AnonymousStreams: auth.Patterns{"*"}},
		})
		return node{addr, aln.Addr().String()}
	}
	n1, n2 := start("n1"), start("n2")
	connect := func(n node, user string) *downstreamtest.Client {
		c := downstreamtest.Dial(t, "ws://"+n.addr+"/ws")
		tok := key.Sign(t, jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()})
		c.Send(fmt.Sprintf(`{"op":"auth","id":1,"token":%q}`, tok))
		if b := c.Next(); !strings.Contains(string(b), fmt.Sprintf(`"user":%q`, user)) {
			t.Fatalf("auth reply %s; want user %s", b, user)
		}
		return c
	}
	a1, a2, b2 := connect(n1, "alice"), connect(n2, "alice"), connect(n2, "bob")

	req, _ := http.NewRequest(http.MethodDelete, "http://"+n1.admin+"/api/v1/users/alice", nil)
	req.Header.Set("Authorization", "Bearer t0ken-t0ken-t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `{"user":"alice","disconnected":1,"other_nodes":1}`; resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != want {
		t.Fatalf("DELETE: %d %s; want 200 %s", resp.StatusCode, body, want)
	}
	for name, c := range map[string]*downstreamtest.Client{"alice on n1": a1, "alice on n2": a2} {
		c.T = t
		if code := c.ExpectClose(); code != 1008 {
			t.Errorf("%s closed with %d; want 1008", name, code)
		}
	}
	// bob stays: his connection still answers.
	b2.Send(`{"op":"list","id":7}`)
	if b := b2.Next(); !strings.Contains(string(b), `"id":7`) {
		t.Errorf("bob's connection answered %s; want the reply to id 7", b)
	}
}
