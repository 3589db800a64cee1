package telemetry_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/marketgate/marketgate/book"
	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/market"
	"github.com/marketgate/marketgate/telemetry"
	"github.com/marketgate/marketgate/upstream"
)

// The fakes stand for the components: each returns a fixed snapshot.
type (
	fakeDownstream downstream.Stats
	fakeFeed       upstream.Status
	fakeHub        hub.Stats
	fakeCluster    struct {
		ready  error
		panics uint64
		owned  []cluster.Lease
	}
)

func (f fakeDownstream) Stats() downstream.Stats { return downstream.Stats(f) }
func (f fakeFeed) Status() upstream.Status       { return upstream.Status(f) }
func (f fakeHub) Stats() hub.Stats               { return hub.Stats(f) }
func (f fakeCluster) Ready() error               { return f.ready }
func (f fakeCluster) Panics() uint64             { return f.panics }
func (f fakeCluster) Owned() []cluster.Lease     { return f.owned }

// series is one expected value: the family, labels its series include, and
// the sum of their values (see value).
type series struct {
	family string
	labels map[string]string
	want   float64
}

// fakeBooks is a BookSource with fixed counters.
type fakeBooks struct {
	name string
	st   book.Stats
}

func (f fakeBooks) Name() string      { return f.name }
func (f fakeBooks) Stats() book.Stats { return f.st }

// fakeMarket is a MarketSource with fixed counters.
type fakeMarket struct{ st market.Stats }

func (f fakeMarket) Stats() market.Stats { return f.st }

// TestCollectFromSources checks that the collector reads each source
// through its interface into the documented families, and leaves out the
// families of a source that is nil.
func TestCollectFromSources(t *testing.T) {
	ds := fakeDownstream{
		Conns: 3, Accepted: 7, Streams: 2, FramesOut: 11, BytesOut: 1100,
		Closed:   map[string]int64{"slow_consumer": 2, "eof": 1},
		Rejected: map[string]int64{"per_ip": 4},
		Commands: map[string]downstream.CommandCount{"subscribe": {OK: 5, Error: 1}},
	}
	feeds := []telemetry.FeedSource{
		fakeFeed{Exchange: "binance", State: upstream.StateConnected, Connections: 2, Reconnects: 1},
		fakeFeed{Exchange: "binance-futures", State: upstream.StateBackoff},
	}
	hs := fakeHub{Published: 5, Received: 6, DecodeErrors: 1, InternalErrors: 2}
	tests := []struct {
		name   string
		src    telemetry.Sources
		want   []series
		absent []string
	}{
		{
			name: "single node",
			src:  telemetry.Sources{Downstream: ds, Feeds: feeds, Hub: hs},
			want: []series{
				{"marketgate_connections_current", nil, 3},
				{"marketgate_connections_accepted_total", nil, 7},
				{"marketgate_connections_closed_total", map[string]string{"reason": "slow_consumer"}, 2},
				{"marketgate_slow_consumer_closes_total", nil, 2},
				{"marketgate_connections_rejected_total", map[string]string{"reason": "per_ip"}, 4},
				{"marketgate_commands_total", map[string]string{"op": "subscribe", "result": "ok"}, 5},
				{"marketgate_commands_total", map[string]string{"op": "subscribe", "result": "error"}, 1},
				{"marketgate_frames_out_total", nil, 11},
				{"marketgate_streams_current", nil, 2},
				{"marketgate_upstream_up", map[string]string{"exchange": "binance"}, 1},
				{"marketgate_upstream_up", map[string]string{"exchange": "binance-futures"}, 0},
				{"marketgate_upstream_state", map[string]string{"exchange": "binance-futures", "state": string(upstream.StateBackoff)}, 1},
				{"marketgate_upstream_connections", map[string]string{"exchange": "binance"}, 2},
				{"marketgate_upstream_reconnects_total", map[string]string{"exchange": "binance"}, 1},
				{"marketgate_hub_published_total", nil, 5},
				{"marketgate_hub_received_total", nil, 6},
				{"marketgate_hub_decode_errors_total", nil, 1},
				{"marketgate_hub_internal_errors_total", nil, 2},
			},
			absent: []string{"marketgate_cluster_ready", "marketgate_cluster_owner", "marketgate_cluster_owned_exchanges"},
		},
		{
			name: "cluster owner of one exchange",
			src: telemetry.Sources{Feeds: feeds, Hub: telemetry.HubFunc(hs.Stats), Cluster: fakeCluster{
				panics: 3, owned: []cluster.Lease{{Exchange: "binance", Token: 9}},
			}},
			want: []series{
				{"marketgate_cluster_ready", nil, 1},
				{"marketgate_cluster_internal_errors_total", nil, 3},
				{"marketgate_cluster_owned_exchanges", nil, 1},
				{"marketgate_cluster_owner", map[string]string{"exchange": "binance"}, 1},
				{"marketgate_cluster_owner", map[string]string{"exchange": "binance-futures"}, 0},
				{"marketgate_hub_published_total", nil, 5},
			},
			absent: []string{"marketgate_connections_current"},
		},
		{
			name: "books",
			src:  telemetry.Sources{Books: []telemetry.BookSource{fakeBooks{name: "binance", st: book.Stats{Books: 2, Snapshots: 5, Syncs: 4, Resyncs: 2, Applied: 100, Crossed: 1}}}},
			want: []series{
				{"marketgate_books", map[string]string{"exchange": "binance"}, 2},
				{"marketgate_book_snapshots_total", map[string]string{"exchange": "binance"}, 5},
				{"marketgate_book_syncs_total", map[string]string{"exchange": "binance"}, 4},
				{"marketgate_book_resyncs_total", map[string]string{"exchange": "binance"}, 2},
				{"marketgate_book_diffs_applied_total", map[string]string{"exchange": "binance"}, 100},
				{"marketgate_book_crossed_total", map[string]string{"exchange": "binance"}, 1},
			},
			absent: []string{"marketgate_hub_published_total"},
		},
		{
			name: "market REST",
			src: telemetry.Sources{Market: fakeMarket{market.Stats{Exchanges: []market.ExchangeStats{{
				Exchange: "binance", Requests: []market.RequestCount{{Endpoint: "depth", Status: 200, Count: 3}, {Endpoint: "klines", Count: 1}},
				UsedWeight: 120, Budget: 4800, Stops418: 1, Stopped: true, CacheHits: 7, BookHits: 2, Coalesced: 99,
			}}}}},
			want: []series{
				{"marketgate_rest_requests_total", map[string]string{"exchange": "binance", "endpoint": "depth", "status": "200"}, 3},
				{"marketgate_rest_requests_total", map[string]string{"exchange": "binance", "endpoint": "klines", "status": "none"}, 1},
				{"marketgate_rest_weight_used", map[string]string{"exchange": "binance"}, 120},
				{"marketgate_rest_weight_budget", map[string]string{"exchange": "binance"}, 4800},
				{"marketgate_rest_stops_total", map[string]string{"exchange": "binance", "status": "418"}, 1},
				{"marketgate_rest_stopped", map[string]string{"exchange": "binance"}, 1},
				{"marketgate_rest_answers_total", map[string]string{"exchange": "binance", "source": "cache"}, 7},
				{"marketgate_rest_answers_total", map[string]string{"exchange": "binance", "source": "book"}, 2},
				{"marketgate_rest_coalesced_total", map[string]string{"exchange": "binance"}, 99},
			},
		},
		{
			name: "cluster not ready",
			src:  telemetry.Sources{Cluster: fakeCluster{ready: errors.New("cluster: starting")}},
			want: []series{
				{"marketgate_cluster_ready", nil, 0},
				{"marketgate_cluster_owned_exchanges", nil, 0},
			},
			absent: []string{"marketgate_cluster_owner", "marketgate_hub_published_total", "marketgate_upstream_up"},
		},
		{
			name:   "no sources",
			src:    telemetry.Sources{Cluster: telemetry.Cluster(nil)},
			absent: telemetry.Families(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mfs := gather(t, tc.src)
			for _, s := range tc.want {
				mf := mfs[s.family]
				if mf == nil {
					t.Errorf("%s missing", s.family)
					continue
				}
				if got := value(mf, s.labels); got != s.want {
					t.Errorf("%s%v = %v; want %v", s.family, s.labels, got, s.want)
				}
			}
			for _, name := range tc.absent {
				if mfs[name] != nil {
					t.Errorf("%s present; want it left out", name)
				}
			}
		})
	}
}

// TestClusterNil checks that a nil node is no cluster, not a non-nil
// interface holding a nil pointer, which Collect would call.
func TestClusterNil(t *testing.T) {
	if src := telemetry.Cluster(nil); src != nil {
		t.Errorf("Cluster(nil) = %#v; want nil", src)
	}
}

// gather collects src once, by family name.
func gather(t *testing.T, src telemetry.Sources) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(telemetry.NewCollector(src))
	list, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	mfs := make(map[string]*dto.MetricFamily, len(list))
	for _, mf := range list {
		mfs[mf.GetName()] = mf
	}
	return mfs
}
