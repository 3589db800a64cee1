package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/marketgate/marketgate/telemetry"
	"github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/binance"
)

// downstreamFamilies, feedFamilies, hubFamilies and clusterFamilies are
// every family of the package doc, by the source that feeds it.
var (
	downstreamFamilies = []string{
		"marketgate_connections_current",
		"marketgate_connections_accepted_total",
		"marketgate_connections_rejected_total",
		"marketgate_connections_closed_total",
		"marketgate_slow_consumer_closes_total",
		"marketgate_commands_total",
		"marketgate_frames_out_total",
		"marketgate_bytes_out_total",
		"marketgate_queue_drops_total",
		"marketgate_messages_fanned_out_total",
		"marketgate_messages_superseded_total",
		"marketgate_internal_errors_total",
		"marketgate_streams_refused_total",
		"marketgate_streams_current",
		"marketgate_end_to_end_latency_seconds",
		"marketgate_fanout_duration_seconds",
		"marketgate_client_writes_total",
	}
	feedFamilies = []string{
		"marketgate_messages_in_total",
		"marketgate_bytes_in_total",
		"marketgate_upstream_up",
		"marketgate_upstream_state",
		"marketgate_upstream_connections",
		"marketgate_upstream_streams",
		"marketgate_upstream_failed_streams",
		"marketgate_upstream_reconnects_total",
		"marketgate_upstream_rotations_total",
		"marketgate_upstream_handover_overflows_total",
		"marketgate_upstream_rejected_streams_total",
		"marketgate_upstream_request_seconds",
		"marketgate_upstream_malformed_messages_total",
		"marketgate_upstream_internal_errors_total",
	}
	hubFamilies = []string{
		"marketgate_hub_published_total",
		"marketgate_hub_publish_errors_total",
		"marketgate_hub_received_total",
		"marketgate_hub_decode_errors_total",
		"marketgate_hub_subscribe_errors_total",
		"marketgate_hub_internal_errors_total",
	}
	clusterFamilies = []string{
		"marketgate_cluster_ready",
		"marketgate_cluster_owned_exchanges",
		"marketgate_cluster_internal_errors_total",
		"marketgate_cluster_owner",
	}
	// runtimeFamilies are a sample of the Go and process collectors'.
	runtimeFamilies = []string{
		"go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_duration_seconds",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
	}
)

// TestMetricsWithTraffic runs the gateway's components in process against
// the exchange simulator, drives traffic through them and scrapes
// /metrics before and after: every family is there both times, and the
// ones that traffic moves have moved.
func TestMetricsWithTraffic(t *testing.T) {
	st := startGateway(t)

	// Traffic before the first scrape: a native client on a trade stream.
	c1 := st.dial(t, "/ws")
	c1.Send(`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade"]}`)
	expectReply(t, c1, `"id":1`)
	readStream(t, c1, "binance:btcusdt@trade", 2)
	before := st.scrape(t)

	// Between the scrapes: a rotation and a reconnect upstream, a new
	// stream (a SUBSCRIBE request upstream), Binance-dialect and bad
	// commands, a refused handshake and a closed connection.
	st.sim.SendServerShutdown(-1) // the exchange asks for a new connection
	waitfor.Cond(t, 20*time.Second, func() error {
		if s := st.feed.Status(); s.Rotations < 1 {
			return fmt.Errorf("rotations = %d", s.Rotations)
		}
		return nil
	})
	st.sim.DropAll()
	waitfor.Cond(t, 15*time.Second, func() error {
		if s := st.feed.Status(); s.Reconnects < 1 || s.State != upstream.StateConnected {
			return fmt.Errorf("reconnects = %d, state %s", s.Reconnects, s.State)
		}
		return nil
	})
	c2 := st.dial(t, "/binance/ws")
	c2.Send(`{"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":7}`)
	expectReply(t, c2, `"id":7`)
	if p := c2.Next(); !strings.Contains(string(p), `"e":"trade"`) {
		t.Errorf("dialect client got %s; want a trade event", p)
	}
	c1.Send(`{"op":"` + strings.Repeat("x", 1000) + `","id":2}`)
	expectReply(t, c1, `"unknown_op"`)
	if resp, err := http.Get(st.wsURL("http") + "/ws"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close() // no Upgrade header: refused
	}
	readStream(t, c1, "binance:btcusdt@trade", 2)
	// The close counts as eof, or as read_error or write_error when the
	// client's unread frames make its socket reset: any reason will do.
	closed := func() (n int64) {
		for _, v := range st.srv.Stats().Closed {
			n += v
		}
		return n
	}
	closedBefore := closed()
	c1.Close()
	waitfor.Cond(t, 5*time.Second, func() error {
		if closed() <= closedBefore {
			return errors.New("closed connection not counted yet")
		}
		return nil
	})
	after := st.scrape(t)

	for _, fams := range [][]string{downstreamFamilies, feedFamilies, hubFamilies, runtimeFamilies} {
		for _, name := range fams {
			for i, mfs := range []map[string]*dto.MetricFamily{before, after} {
				mf := mfs[name]
				if mf == nil || len(mf.GetMetric()) == 0 {
					t.Errorf("scrape %d: family %s missing", i+1, name)
				} else if strings.HasPrefix(name, "marketgate_") && mf.GetHelp() == "" {
					t.Errorf("family %s has no help text", name)
				}
			}
		}
	}
	for _, name := range clusterFamilies {
		if after[name] != nil {
			t.Errorf("family %s present without a cluster", name)
		}
	}

	// Each family that traffic moves, with the series that must have grown.
	ex := map[string]string{"exchange": "binance"}
	moved := []struct {
		family string
		labels map[string]string
	}{
		{"marketgate_connections_accepted_total", nil},
		{"marketgate_connections_rejected_total", map[string]string{"reason": "handshake"}},
		{"marketgate_connections_closed_total", nil},
		{"marketgate_commands_total", map[string]string{"op": "other", "result": "error"}},
		{"marketgate_commands_total", map[string]string{"op": "SUBSCRIBE", "result": "ok"}},
		{"marketgate_frames_out_total", nil},
		{"marketgate_bytes_out_total", nil},
		{"marketgate_messages_fanned_out_total", nil},
		{"marketgate_end_to_end_latency_seconds", nil},
		{"marketgate_fanout_duration_seconds", nil},
		{"marketgate_client_writes_total", nil},
		{"marketgate_messages_in_total", map[string]string{"exchange": "binance", "kind": "trade"}},
		{"marketgate_bytes_in_total", map[string]string{"exchange": "binance", "kind": "trade"}},
		{"marketgate_messages_in_total", map[string]string{"exchange": "binance", "kind": "other"}}, // replies
		{"marketgate_upstream_reconnects_total", ex},
		{"marketgate_upstream_rotations_total", ex},
		{"marketgate_upstream_request_seconds", ex},
		{"marketgate_hub_published_total", nil},
		{"marketgate_hub_received_total", nil},
	}
	for _, m := range moved {
		b, a := value(before[m.family], m.labels), value(after[m.family], m.labels)
		if a <= b {
			t.Errorf("%s%v did not move: %v, then %v", m.family, m.labels, b, a)
		}
	}

	// The states of a connected feed.
	if v := value(after["marketgate_upstream_up"], ex); v != 1 {
		t.Errorf("marketgate_upstream_up = %v; want 1", v)
	}
	if v := value(after["marketgate_upstream_state"], map[string]string{"exchange": "binance", "state": "connected"}); v != 1 {
		t.Errorf(`marketgate_upstream_state{state="connected"} = %v; want 1`, v)
	}
	if v := value(after["marketgate_upstream_state"], ex); v != 1 {
		t.Errorf("marketgate_upstream_state sums to %v; want 1 (one state at a time)", v)
	}
	// One stream with subscribers each time: btcusdt@trade, then
	// ethusdt@trade once the first client left.
	for i, mfs := range []map[string]*dto.MetricFamily{before, after} {
		if v := value(mfs["marketgate_streams_current"], nil); v != 1 {
			t.Errorf("scrape %d: marketgate_streams_current = %v; want 1", i+1, v)
		}
	}
	// Frames out are queued per subscriber: at least one per message.
	if f, m := value(after["marketgate_frames_out_total"], nil), value(after["marketgate_messages_fanned_out_total"], nil); f < m {
		t.Errorf("frames out %v < messages fanned out %v", f, m)
	}
	// End-to-end latency comes from the simulator's event times, on
	// this machine's clock: well under a minute.
	if h := after["marketgate_end_to_end_latency_seconds"].GetMetric()[0].GetHistogram(); h.GetSampleSum()/float64(h.GetSampleCount()) > 60 {
		t.Errorf("mean end-to-end latency %vs; want seconds at most", h.GetSampleSum()/float64(h.GetSampleCount()))
	}
	checkLabels(t, after, "binance")
}

// TestQueueDropsAndSlowConsumers drives the drop and close families: two
// messages of a conflatable stream in one burst for a queue that holds one,
// and a trade larger than the queue.
func TestQueueDropsAndSlowConsumers(t *testing.T) {
	st := startStub(t, downstream.Config{WriteQueueBytes: 4096})
	before := st.scrape(t)

	book := st.dial(t, "/ws")
	book.Send(`{"op":"subscribe","id":1,"streams":["binance:btcusdt@bookTicker"]}`)
	expectReply(t, book, `"id":1`)
	data := []byte(`"` + strings.Repeat("b", 3000) + `"`)
	seq := uint64(0)
	// A flush of the reply may still be writing when the first message
	// comes, and take it along: try again until a burst conflates.
	waitfor.Cond(t, 5*time.Second, func() error {
		for range 2 {
			seq++
			st.hub.Publish(t.Context(), hub.Message{Stream: "binance:btcusdt@bookTicker", Seq: seq, Conflate: true, Data: data})
		}
		st.hub.Flush(t.Context())
		if st.srv.Stats().Dropped["conflated"] == 0 {
			return errors.New("nothing conflated")
		}
		return nil
	})

	trades := st.dial(t, "/ws")
	trades.Send(`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade"]}`)
	expectReply(t, trades, `"id":1`)
	big := []byte(`"` + strings.Repeat("t", 5000) + `"`)
	st.hub.Publish(t.Context(), hub.Message{Stream: "binance:btcusdt@trade", Seq: 1, Data: big})
	st.hub.Flush(t.Context())
	if code := trades.ExpectClose(); code != downstream.StatusSlowConsumer {
		t.Errorf("close code %d; want %d", code, downstream.StatusSlowConsumer)
	}
	after := st.scrape(t)

	for _, m := range []struct {
		family string
		labels map[string]string
	}{
		{"marketgate_queue_drops_total", map[string]string{"reason": "conflated"}},
		{"marketgate_slow_consumer_closes_total", nil},
		{"marketgate_connections_closed_total", map[string]string{"reason": "slow_consumer"}},
	} {
		if b, a := value(before[m.family], m.labels), value(after[m.family], m.labels); a <= b {
			t.Errorf("%s%v did not move: %v, then %v", m.family, m.labels, b, a)
		}
	}
	checkLabels(t, after)
}

// TestLabelsFromClientInput checks that what a client sends never becomes
// a label value: whatever it is, it is counted under a fixed label.
func TestLabelsFromClientInput(t *testing.T) {
	long := strings.Repeat("x", 1000)
	tests := []struct {
		name   string
		path   string // the endpoint, or a handshake that is refused
		send   string // a command, or "" for none
		family string
		labels map[string]string
	}{
		{"unknown native op", "/ws", `{"op":"` + long + `","id":1}`,
			"marketgate_commands_total", map[string]string{"op": "other", "result": "error"}},
		{"op of another case", "/ws", `{"op":"Subscribe","id":1}`,
			"marketgate_commands_total", map[string]string{"op": "other", "result": "error"}},
		{"missing op", "/ws", `{"id":1}`,
			"marketgate_commands_total", map[string]string{"op": "other", "result": "error"}},
		{"invalid JSON", "/ws", `{"op":` + long,
			"marketgate_commands_total", map[string]string{"op": "other", "result": "error"}},
		{"invalid stream", "/ws", `{"op":"subscribe","id":1,"streams":["binance:` + long + `@trade"]}`,
			"marketgate_commands_total", map[string]string{"op": "subscribe", "result": "error"}},
		{"unknown dialect method", "/binance/ws", `{"method":"` + long + `","id":1}`,
			"marketgate_commands_total", map[string]string{"op": "other", "result": "error"}},
		{"method not a string", "/binance/ws", `{"method":{"` + long + `":1},"id":1}`,
			"marketgate_commands_total", map[string]string{"op": "other", "result": "error"}},
		{"dialect subscribe", "/binance/ws", `{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}`,
			"marketgate_commands_total", map[string]string{"op": "SUBSCRIBE", "result": "ok"}},
		{"unknown property", "/binance/ws", `{"method":"GET_PROPERTY","params":["` + long + `"],"id":1}`,
			"marketgate_commands_total", map[string]string{"op": "GET_PROPERTY", "result": "error"}},
		{"unknown path", "/" + long, "",
			"marketgate_connections_rejected_total", map[string]string{"reason": "bad_request"}},
	}
	st := startStub(t, downstream.Config{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := value(st.scrape(t)[tc.family], tc.labels)
			if tc.send == "" {
				if _, err := downstreamtest.TryDial(st.wsURL("ws")+tc.path, nil); err == nil {
					t.Fatalf("handshake on %.20s… accepted; want it refused", tc.path)
				}
			} else {
				c := st.dial(t, tc.path)
				c.Send(tc.send)
				c.Next() // the reply
				c.Close()
			}
			// A command is counted right after its reply is queued.
			var after map[string]*dto.MetricFamily
			waitfor.Cond(t, 5*time.Second, func() error {
				after = st.scrape(t)
				if got := value(after[tc.family], tc.labels); got != before+1 {
					return fmt.Errorf("%s%v = %v; want %v", tc.family, tc.labels, got, before+1)
				}
				return nil
			})
			checkLabels(t, after)
		})
	}
}

// TestClusterFamilies checks the cluster families and the Redis hub's
// counters are there with a cluster node and a Redis hub that have not
// started (neither needs Redis before Run).
func TestClusterFamilies(t *testing.T) {
	feed, err := upstream.New(upstream.Config{Dialect: binance.Spot, Publisher: hub.NewMemory(), Lazy: true})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	node, err := cluster.New(cluster.Config{Client: rdb, NodeID: "n1", Exchanges: []string{"binance"}, Local: upstream.NewRouter(feed)})
	if err != nil {
		t.Fatal(err)
	}
	rh, err := hub.NewRedis(hub.RedisConfig{URL: "redis://127.0.0.1:1", NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	reg := telemetry.NewRegistry(telemetry.Sources{Feeds: telemetry.Feeds([]*upstream.Feed{feed}), Hub: rh, Cluster: node})
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("Gather: %v", err)
	}
	hs := httptest.NewServer(telemetry.Handler(reg))
	defer hs.Close()
	mfs := scrape(t, hs.URL)
	for _, name := range slices.Concat(clusterFamilies, hubFamilies, feedFamilies) {
		if name == "marketgate_messages_in_total" || name == "marketgate_bytes_in_total" {
			continue // no message read yet: no kind to count under
		}
		if mfs[name] == nil {
			t.Errorf("family %s missing", name)
		}
	}
	for _, name := range downstreamFamilies {
		if mfs[name] != nil {
			t.Errorf("family %s present without a downstream server", name)
		}
	}
	if v := value(mfs["marketgate_cluster_ready"], nil); v != 0 {
		t.Errorf("marketgate_cluster_ready = %v before Run; want 0", v)
	}
	if v := value(mfs["marketgate_cluster_owner"], map[string]string{"exchange": "binance"}); v != 0 {
		t.Errorf(`marketgate_cluster_owner{exchange="binance"} = %v before Run; want 0`, v)
	}
	if v := value(mfs["marketgate_upstream_state"], map[string]string{"exchange": "binance", "state": "idle"}); v != 1 {
		t.Errorf(`marketgate_upstream_state{state="idle"} = %v; want 1`, v)
	}
	checkLabels(t, mfs, "binance")
}

// stack is the gateway's components running in process.
type stack struct {
	sim        *binancesim.Server // nil in a stub stack
	feed       *upstream.Feed     // nil in a stub stack
	hub        *hub.Memory
	srv        *downstream.Server
	addr       string // of the browser endpoints
	reg        *prometheus.Registry
	metricsURL string
}

func (s *stack) wsURL(scheme string) string { return scheme + "://" + s.addr }

// dial connects a client to path, waiting for the server to be running.
func (s *stack) dial(t *testing.T, path string) *downstreamtest.Client {
	t.Helper()
	return downstreamtest.Dial(t, s.wsURL("ws")+path)
}

// startGateway runs the exchange simulator, a Binance feed on it, the
// in-process hub and the downstream server, as cmd/marketgate wires them
// on a single node, with their metrics served on a test server.
func startGateway(t *testing.T) *stack {
	t.Helper()
	log := testLogger(t)
	sim, err := binancesim.New(binancesim.Config{Logger: log, TickInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mem := hub.NewMemory()
	feed, err := upstream.New(upstream.Config{Dialect: binance.Spot,
		URL: "ws://" + simLn.Addr().String(), RESTURL: "http://" + simLn.Addr().String(),
		Publisher: mem, Logger: log, BackoffMin: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := downstream.New(downstream.Config{Hub: mem, Source: upstream.NewRouter(feed), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{sim: sim, feed: feed, hub: mem, srv: srv}
	st.run(t, func(ctx context.Context) error { return sim.Run(ctx, simLn) }, feed.Run, mem.Run)
	waitfor.Cond(t, 15*time.Second, feed.Ready)
	st.serve(t, telemetry.Sources{Downstream: srv, Feeds: telemetry.Feeds([]*upstream.Feed{feed}), Hub: mem})
	return st
}

// startStub runs a downstream server on an in-process hub with a fixed
// set of valid streams and no exchange: the test publishes every message.
func startStub(t *testing.T, cfg downstream.Config) *stack {
	t.Helper()
	mem := hub.NewMemory()
	cfg.Hub, cfg.Source, cfg.Logger = mem, stubSource{}, testLogger(t)
	srv, err := downstream.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{hub: mem, srv: srv}
	st.run(t, mem.Run)
	st.serve(t, telemetry.Sources{Downstream: srv, Hub: mem})
	return st
}

// run runs the components' Run methods and, when the test ends, stops
// them and checks what they returned.
func (s *stack) run(t *testing.T, runs ...func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, len(runs)+1)
	for _, run := range append(runs, s.srv.Run) {
		wg.Go(func() { errs <- run(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Run = %v; want nil", err)
			}
		}
	})
}

// serve serves the browser endpoints and the metrics of src on test
// servers, and waits for the downstream server to take connections.
func (s *stack) serve(t *testing.T, src telemetry.Sources) {
	t.Helper()
	ws := httptest.NewServer(s.srv)
	t.Cleanup(ws.Close)
	s.addr = strings.TrimPrefix(ws.URL, "http://")
	s.reg = telemetry.NewRegistry(src)
	ms := httptest.NewServer(telemetry.Handler(s.reg))
	t.Cleanup(ms.Close)
	s.metricsURL = ms.URL
	waitfor.Cond(t, 5*time.Second, func() error {
		c, err := downstreamtest.TryDial(s.wsURL("ws")+"/ws", nil)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// stubSource accepts two Binance streams and refuses every other key.
type stubSource struct{}

func (stubSource) Validate(key string) error {
	if key == "binance:btcusdt@trade" || key == "binance:btcusdt@bookTicker" {
		return nil
	}
	return errors.New("unknown stream")
}
func (stubSource) Want([]string)   {}
func (stubSource) Unwant([]string) {}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// expectReply reads c until a message containing want.
func expectReply(t *testing.T, c *downstreamtest.Client, want string) {
	t.Helper()
	for {
		if p := c.Next(); strings.Contains(string(p), want) {
			return
		}
	}
}

// readStream reads c until n messages of stream have arrived.
func readStream(t *testing.T, c *downstreamtest.Client, stream string, n int) {
	t.Helper()
	for n > 0 {
		if strings.Contains(string(c.Next()), `"stream":"`+stream+`"`) {
			n--
		}
	}
}

// scrape gets the stack's metrics and parses the text exposition format.
// It fails t if a collector failed: the handler still answers then.
func (s *stack) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	if _, err := s.reg.Gather(); err != nil {
		t.Fatalf("Gather: %v", err)
	}
	return scrape(t, s.metricsURL)
}

// scrape gets url and parses the text exposition format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return mfs
}

// value sums the series of mf whose labels include want: counter and
// gauge values, and the sample counts of histograms.
func value(mf *dto.MetricFamily, want map[string]string) float64 {
	var sum float64
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// allowedLabels are the only values each label of the marketgate_
// families may take; "exchange" takes the configured names only.
var allowedLabels = map[string][]string{
	"reason": {
		// closes
		"eof", "read_error", "write_error", "normal", "going_away", "protocol_error",
		"unsupported_data", "invalid_payload", "policy_violation", "message_too_big",
		"slow_consumer", "keepalive_timeout", "unauthorized", "token_expired", "user_conn_limit", "try_again_later", "other",
		// handshakes refused
		"bad_request", "not_running", "draining", "origin", "max_conns", "per_ip", "handshake", "early_data",
		// drops
		"conflated", "catchup",
	},
	"op": {"subscribe", "unsubscribe", "list", "ping", "auth", "SUBSCRIBE", "UNSUBSCRIBE",
		"LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY", "other"},
	"result": {"ok", "error",
		// auth outcomes (marketgate_auth_total)
		"refreshed", "invalid", "expired", "over_limit", "limiter_error", "missing", "timeout", "connection_expired", "forbidden", "disabled"},
	"state": {"idle", "loading", "connecting", "connected", "backoff", "stopped"},
	"kind":  streamKinds(),
}

// streamKinds returns the stream kinds of Binance's dialect, and "other".
func streamKinds() []string {
	return append([]string{"other"}, binance.Spot.Kinds()...)
}

// checkLabels fails t if a series of a marketgate_ family has a label
// value outside its fixed set.
func checkLabels(t *testing.T, mfs map[string]*dto.MetricFamily, exchanges ...string) {
	t.Helper()
	allowed := maps.Clone(allowedLabels)
	allowed["exchange"] = exchanges
	for _, name := range slices.Sorted(maps.Keys(mfs)) {
		if !strings.HasPrefix(name, "marketgate_") || name == "marketgate_build_info" {
			continue // build_info: one series, its labels fixed by the build
		}
		for _, m := range mfs[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(allowed[l.GetName()], l.GetValue()) {
					t.Errorf("%s has label %s=%.40q outside its fixed set", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestFamilies checks that Families lists what a scrape exports.
func TestFamilies(t *testing.T) {
	fams := telemetry.Families()
	for _, want := range []string{"marketgate_connections_current", "marketgate_end_to_end_latency_seconds", "marketgate_upstream_up", "marketgate_hub_published_total"} {
		if !slices.Contains(fams, want) {
			t.Errorf("Families() = %v; want it to include %s", fams, want)
		}
	}
	if len(fams) < 30 {
		t.Errorf("Families() lists %d families; want every one (more than 30)", len(fams))
	}
}
