package binancesim

import (
	"net"
	"net/http"
	"sync"
)

// restGate accounts the REST calls: counters, and (weights.go) the
// weight each IP spent and its 429 and 418 state.
type restGate struct {
	mu    sync.Mutex // guards the following
	stats RESTStats
}

func newRESTGate() *restGate {
	return &restGate{stats: RESTStats{Requests: map[string]int{}}}
}

// remoteIP returns the IP of r's peer.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// count records one request for path.
func (g *restGate) count(path string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats.Requests[path]++
}
