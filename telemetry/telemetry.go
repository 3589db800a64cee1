package telemetry

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/marketgate/marketgate/book"
	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/latency"
	"github.com/marketgate/marketgate/internal/version"
	"github.com/marketgate/marketgate/market"
	"github.com/marketgate/marketgate/upstream"
)

// Sources are the components whose counters the metrics read. Each is
// optional: a nil one leaves its families out. Their methods are called
// at scrape time, from the scraping goroutine, so they must be safe for
// concurrent use.
type Sources struct {
	// Downstream is the browser-facing server.
	Downstream DownstreamSource
	// Feeds are the exchange feeds this node has, running or not (in a
	// cluster a feed runs only while the node owns its exchange); see
	// [Feeds].
	Feeds []FeedSource
	// Hub is the hub: [hub.Redis] in a cluster, [hub.Memory] on a single
	// node.
	Hub HubSource
	// Cluster is the node's cluster membership; nil on a single node (see
	// [Cluster]).
	Cluster ClusterSource
	// Books are the exchanges' kept order books ([book.Books]).
	Books []BookSource
	// Market is the market-data REST ([market.Market]); nil: none.
	Market MarketSource
}

// MarketSource is what the metrics read of the market-data REST, a
// [market.Market].
type MarketSource interface {
	Stats() market.Stats
}

// BookSource is what the metrics read of one exchange's kept order
// books, a [book.Books].
type BookSource interface {
	Name() string
	Stats() book.Stats
}

// DownstreamSource is what the metrics read of the browser-facing server,
// a [downstream.Server].
type DownstreamSource interface {
	Stats() downstream.Stats
}

// FeedSource is what the metrics read of one exchange feed, an
// [upstream.Feed]. Status().Exchange names the feed.
type FeedSource interface {
	Status() upstream.Status
}

// Feeds returns feeds as the [Sources] of their metrics.
func Feeds(feeds []*upstream.Feed) []FeedSource {
	out := make([]FeedSource, len(feeds))
	for i, f := range feeds {
		out[i] = f
	}
	return out
}

// HubSource is what the metrics read of the hub: [hub.Memory] and
// [hub.Redis] are HubSources.
type HubSource interface {
	Stats() hub.Stats
}

// HubFunc makes a function returning a hub's counters a [HubSource].
type HubFunc func() hub.Stats

// Stats returns f().
func (f HubFunc) Stats() hub.Stats { return f() }

// ClusterSource is what the metrics read of the node's cluster
// membership, a [cluster.Node]: whether its heartbeats reach Redis, the
// panics its loops recovered, and the upstream leases it holds.
type ClusterSource interface {
	Ready() error
	Panics() uint64
	Owned() []cluster.Lease
}

// Cluster returns n as a [ClusterSource], and nil (a single node) when n
// is nil; a nil *cluster.Node stored in the interface would not be.
func Cluster(n *cluster.Node) ClusterSource {
	if n == nil {
		return nil
	}
	return n
}

// NewRegistry returns a registry holding the gateway's metrics (see the
// package doc), read from src at each scrape, marketgate_build_info
// ([BuildInfo] of the running binary), plus the Go runtime and process
// collectors. Serve it with [Handler].
func NewRegistry(src Sources) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src),
		BuildInfo(version.Get()),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves reg in the Prometheus exposition formats, for /metrics.
// A collector that fails is reported in the answer and in
// promhttp_metric_handler_errors_total; the other metrics are still served.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:      reg,
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// upstreamStates are the values of the state label of
// marketgate_upstream_state: every [upstream.State].
var upstreamStates = []upstream.State{
	upstream.StateIdle, upstream.StateLoading, upstream.StateConnecting,
	upstream.StateConnected, upstream.StateBackoff, upstream.StateStopped,
}

// collector reads every component's snapshot at scrape time. It keeps no
// state of its own, so the components stay free of Prometheus.
type collector struct {
	src Sources

	connsCurrent, connsAccepted, connsRejected, connsClosed *prometheus.Desc
	commands                                                *prometheus.Desc
	framesOut, bytesOut                                     *prometheus.Desc
	queueDrops, slowCloses                                  *prometheus.Desc
	fannedOut, superseded, internalErrors, streamsRefused   *prometheus.Desc
	historyErrors, authOutcomes                             *prometheus.Desc
	streamsCurrent, latency                                 *prometheus.Desc
	fanoutDuration, clientWrites                            *prometheus.Desc

	messagesIn, bytesIn                    *prometheus.Desc
	upUp, upState, upConns, upStreams      *prometheus.Desc
	upFailed, upReconnects, upRotations    *prometheus.Desc
	upOverflows, upRejected, upRequestTime *prometheus.Desc
	upMalformed, upInternalErrors          *prometheus.Desc
	upLanes, upLanesUp, upMerged, upDups   *prometheus.Desc
	upForced                               *prometheus.Desc

	hubPublished, hubPublishErrors, hubReceived, hubDecodeErrors, hubSubscribeErrors *prometheus.Desc
	hubDropped                                                                       *prometheus.Desc
	hubInternalErrors                                                                *prometheus.Desc

	clusterReady, clusterOwned, clusterOwner, clusterPanics *prometheus.Desc

	books, bookSnapshots, bookSyncs, bookResyncs, bookApplied, bookCrossed, bookBadDiffs *prometheus.Desc

	restRequests, restWeightUsed, restWeightBudget, restStops, restStopped, restAnswers, restCoalesced *prometheus.Desc
}

// NewCollector returns the collector of the gateway's own metrics
// (without the Go and process collectors that [NewRegistry] adds).
func NewCollector(src Sources) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("marketgate_"+name, help, labels, nil)
	}
	return &collector{
		src: src,

		connsCurrent:   d("connections_current", "Browser WebSocket connections open now."),
		connsAccepted:  d("connections_accepted_total", "Browser WebSocket handshakes accepted."),
		connsRejected:  d("connections_rejected_total", "Browser WebSocket handshakes refused, by reason.", "reason"),
		connsClosed:    d("connections_closed_total", "Browser connections closed, by reason (the close code sent, or how the peer went away).", "reason"),
		commands:       d("commands_total", "Client commands, by op (native ops, Binance dialect methods, or other for anything else a client sends) and result.", "op", "result"),
		framesOut:      d("frames_out_total", "Stream frames queued on browser connections at fan-out, one per subscriber of each message (replies and control frames not included)."),
		bytesOut:       d("bytes_out_total", "Bytes of the stream frames queued on browser connections at fan-out, WebSocket headers included."),
		queueDrops:     d("queue_drops_total", "Messages dropped from the write queue of a client that stayed connected, by reason (conflated: a newer value of the same stream replaced it; catchup: a live message held during a subscribe's history read, dropped after a gap the client is told of).", "reason"),
		slowCloses:     d("slow_consumer_closes_total", "Browser connections closed because their write queue overflowed on a stream that cannot be conflated (close code 4008); also counted in connections_closed_total{reason=\"slow_consumer\"}."),
		fannedOut:      d("messages_fanned_out_total", "Hub messages fanned out to this node's subscribers."),
		superseded:     d("messages_superseded_total", "Hub messages not fanned out because a message at the same or a later position of their stream was delivered already (it came twice)."),
		historyErrors:  d("history_read_errors_total", "Stream history reads that failed while a subscribe caught up (its client got no position or recovery for the stream, and a gap mark where it asked to recover)."),
		internalErrors: d("internal_errors_total", "Events that should not happen, such as a full worker queue or a recovered panic."),
		streamsRefused: d("streams_refused_total", "Subscribe commands refused because the node's or the client address's distinct streams were at their limit, or the hub refused a new stream."),
		streamsCurrent: d("streams_current", "Streams with subscribers on this node."),
		authOutcomes: d("auth_total", "Browser authentication outcomes, by result: ok, refreshed (a new token on a connection), invalid, expired (at presentation), over_limit (the user's conns), "+
			"limiter_error (the count could not be read; let in), missing and timeout (a token was required), connection_expired (closed at exp, 4003), forbidden (a subscribe refused), disabled (no keys configured).", "result"),
		latency: d("end_to_end_latency_seconds", "Time from the exchange's event time (its E field) to the fan-out of the message to this node's subscribers, once per message: "+
			"it ends when the frames are queued, before they are written, and compares the exchange's clock with ours. Events without an event time are not observed."),

		fanoutDuration: d("fanout_duration_seconds", "Time from a message's arrival at this node (from the exchange or the hub) to the end of the writes that handed its last subscriber's frame to the kernel, once per message with local subscribers; "+
			"includes --write-delay. Frames a full socket buffer held back (slow clients) are not waited for."),
		clientWrites:     d("client_writes_total", "Write system calls to browser connections (writev on Linux); frames_out_total / client_writes_total is the frames per write."),
		messagesIn:       d("messages_in_total", "Text messages read from the exchange, by the kind of the stream each was routed to (other: replies, events of streams no longer subscribed, unreadable messages).", "exchange", "kind"),
		bytesIn:          d("bytes_in_total", "Bytes of the text messages read from the exchange (WebSocket payloads), by stream kind.", "exchange", "kind"),
		upUp:             d("upstream_up", "1 while every upstream connection of the exchange is up, else 0.", "exchange"),
		upState:          d("upstream_state", "1 for the exchange feed's current state, 0 for the others.", "exchange", "state"),
		upConns:          d("upstream_connections", "Open upstream connections, those being replaced included.", "exchange"),
		upStreams:        d("upstream_streams", "Streams the exchange confirmed on the connections that subscribe.", "exchange"),
		upFailed:         d("upstream_failed_streams", "Desired streams the exchange refused or that cannot be subscribed.", "exchange"),
		upReconnects:     d("upstream_reconnects_total", "Upstream connections made after one ended unplanned.", "exchange"),
		upRotations:      d("upstream_rotations_total", "Upstream connections replaced before their lifetime ended.", "exchange"),
		upOverflows:      d("upstream_handover_overflows_total", "Streams that switched connections with a gap because their handover buffer was full.", "exchange"),
		upRejected:       d("upstream_rejected_streams_total", "Stream names the feed dropped as invalid or over its limit.", "exchange"),
		upMalformed:      d("upstream_malformed_messages_total", "Messages from the exchange that could not be parsed (such as mismatched brackets); dropped, never relayed.", "exchange"),
		upInternalErrors: d("upstream_internal_errors_total", "Panics recovered in the feed's goroutines (a bug); each ended its connection, which was made again.", "exchange"),
		upLanes:          d("upstream_lanes", "Connections carrying each stream at once (--<exchange>-redundancy).", "exchange"),
		upLanesUp:        d("upstream_lanes_up", "Lanes of the feed whose every connection is up.", "exchange"),
		upMerged:         d("upstream_events_merged_total", "Events a redundant feed published after de-duplicating its lanes.", "exchange"),
		upDups:           d("upstream_duplicates_dropped_total", "Events of a redundant feed's lanes dropped because another lane's copy was published.", "exchange"),
		upForced:         d("upstream_lane_joins_forced_total", "Times a lane that lost events was taken without proof that it follows what was published, because the lanes in line fell quiet (Gap unless continuity shows).", "exchange"),
		upRequestTime:    d("upstream_request_seconds", "Time from sending a SUBSCRIBE or UNSUBSCRIBE to the exchange to its reply (requests that time out are not observed).", "exchange"),

		hubPublished:       d("hub_published_total", "Messages the hub accepted for fan-out (Redis: accepted by Redis)."),
		hubPublishErrors:   d("hub_publish_errors_total", "Messages the hub could not send, or that a feed's full publish queue dropped (Redis too slow); they are lost (always 0 in process)."),
		hubReceived:        d("hub_received_total", "Messages the hub received for delivery (Redis: well-formed messages off the subscriber connections; in process: messages with at least one receiver)."),
		hubDecodeErrors:    d("hub_decode_errors_total", "Malformed messages the hub received and dropped (always 0 in process)."),
		hubSubscribeErrors: d("hub_subscribe_errors_total", "Failed Redis SUBSCRIBE or UNSUBSCRIBE commands, retried (always 0 in process)."),
		hubDropped:         d("hub_dropped_total", "Published messages the hub's numbering dropped: an older owner's, or an event already numbered (a handover's overlap). Not an error."),
		hubInternalErrors:  d("hub_internal_errors_total", "Panics recovered in the hub's receivers (a bug); delivery went on."),

		clusterReady:  d("cluster_ready", "1 while this node's cluster heartbeats reach Redis, else 0."),
		clusterOwned:  d("cluster_owned_exchanges", "Exchanges whose upstream lease this node holds."),
		clusterPanics: d("cluster_internal_errors_total", "Panics recovered in the cluster's loops (heartbeat, demand, leases); each loop started again."),
		clusterOwner:  d("cluster_owner", "1 while this node holds the exchange's upstream lease, else 0.", "exchange"),

		books:         d("books", "Order books this node keeps now (it owns the exchange and a client wants the book).", "exchange"),
		bookSnapshots: d("book_snapshots_total", "REST snapshots the books asked the exchange for.", "exchange"),
		bookSyncs:     d("book_syncs_total", "Books made from a snapshot and the diffs buffered meanwhile.", "exchange"),
		bookResyncs:   d("book_resyncs_total", "Books discarded and made again: a gap in the diffs, a reconnect upstream, a crossed book or an unreadable diff.", "exchange"),
		bookApplied:   d("book_diffs_applied_total", "Diff events applied to kept books.", "exchange"),
		bookCrossed:   d("book_crossed_total", "Kept books found crossed (best bid at or above best ask), each resynced.", "exchange"),
		bookBadDiffs:  d("book_bad_diffs_total", "Diff events that could not be read, each resynced.", "exchange"),

		restRequests:     d("rest_requests_total", "REST calls the node made to the exchange, by endpoint and HTTP status (none: no answer).", "exchange", "endpoint", "status"),
		restWeightUsed:   d("rest_weight_used", "The IP's REST weight used in the current minute, as the exchange last said (X-MBX-USED-WEIGHT-1M) plus what the node spent since.", "exchange"),
		restWeightBudget: d("rest_weight_budget", "The REST weight the node may use per minute now: --rest-weight-share of the limit, halved for a while after a 429.", "exchange"),
		restStops:        d("rest_stops_total", "Times the exchange stopped REST calls: 429 (rate limit, for its Retry-After) or 418 (IP ban).", "exchange", "status"),
		restStopped:      d("rest_stopped", "1 while REST calls to the exchange are stopped by a 429 or 418, else 0.", "exchange"),
		restAnswers:      d("rest_answers_total", "Market-data REST answers to browsers, by source: exchange (fetched, or sharing a fetch in flight: rest_coalesced_total), cache, stale (cache past its TTL during a stop), book (a kept order book), unavailable (503), rejected (the weight budget was spent).", "exchange", "source"),
		restCoalesced:    d("rest_coalesced_total", "Browser REST requests that shared another's exchange call.", "exchange"),
	}
}

// Describe sends every descriptor the collector may use.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.connsCurrent, c.connsAccepted, c.connsRejected, c.connsClosed, c.commands,
		c.framesOut, c.bytesOut, c.queueDrops, c.slowCloses, c.fannedOut, c.superseded, c.historyErrors, c.authOutcomes,
		c.internalErrors, c.streamsRefused, c.streamsCurrent, c.latency, c.fanoutDuration, c.clientWrites,
		c.messagesIn, c.bytesIn, c.upUp, c.upState, c.upConns, c.upStreams, c.upFailed,
		c.upReconnects, c.upRotations, c.upOverflows, c.upRejected, c.upRequestTime,
		c.upMalformed, c.upInternalErrors, c.upLanes, c.upLanesUp, c.upMerged, c.upDups, c.upForced,
		c.hubPublished, c.hubPublishErrors, c.hubReceived, c.hubDecodeErrors, c.hubSubscribeErrors, c.hubDropped,
		c.hubInternalErrors,
		c.clusterReady, c.clusterOwned, c.clusterOwner, c.clusterPanics,
		c.books, c.bookSnapshots, c.bookSyncs, c.bookResyncs, c.bookApplied, c.bookCrossed, c.bookBadDiffs,
		c.restRequests, c.restWeightUsed, c.restWeightBudget, c.restStops, c.restStopped, c.restAnswers, c.restCoalesced,
	} {
		ch <- d
	}
}

// Collect reads the components' snapshots.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Downstream != nil {
		c.collectDownstream(ch, c.src.Downstream.Stats())
	}
	feeds := make([]upstream.Status, len(c.src.Feeds))
	for i, f := range c.src.Feeds {
		feeds[i] = f.Status()
		c.collectFeed(ch, feeds[i])
	}
	if c.src.Hub != nil {
		st := c.src.Hub.Stats()
		counter(ch, c.hubPublished, st.Published)
		counter(ch, c.hubPublishErrors, st.PublishErrors)
		counter(ch, c.hubReceived, st.Received)
		counter(ch, c.hubDecodeErrors, st.DecodeErrors)
		counter(ch, c.hubSubscribeErrors, st.SubscribeErrors)
		counter(ch, c.hubDropped, st.Dropped)
		counter(ch, c.hubInternalErrors, st.InternalErrors)
	}
	if c.src.Market != nil {
		for _, x := range c.src.Market.Stats().Exchanges {
			for _, r := range x.Requests {
				status := "none"
				if r.Status != 0 {
					status = strconv.Itoa(r.Status)
				}
				counter(ch, c.restRequests, r.Count, x.Exchange, string(r.Endpoint), status)
			}
			gauge(ch, c.restWeightUsed, x.UsedWeight, x.Exchange)
			gauge(ch, c.restWeightBudget, x.Budget, x.Exchange)
			counter(ch, c.restStops, x.Stops429, x.Exchange, "429")
			counter(ch, c.restStops, x.Stops418, x.Exchange, "418")
			gauge(ch, c.restStopped, boolValue(x.Stopped), x.Exchange)
			counter(ch, c.restAnswers, x.CacheMisses, x.Exchange, "exchange")
			counter(ch, c.restAnswers, x.CacheHits, x.Exchange, "cache")
			counter(ch, c.restAnswers, x.CacheStale, x.Exchange, "stale")
			counter(ch, c.restAnswers, x.BookHits, x.Exchange, "book")
			counter(ch, c.restAnswers, x.Unavailable, x.Exchange, "unavailable")
			counter(ch, c.restAnswers, x.Rejected, x.Exchange, "rejected")
			counter(ch, c.restCoalesced, x.Coalesced, x.Exchange)
		}
	}
	for _, b := range c.src.Books {
		st, x := b.Stats(), b.Name()
		gauge(ch, c.books, st.Books, x)
		counter(ch, c.bookSnapshots, st.Snapshots, x)
		counter(ch, c.bookSyncs, st.Syncs, x)
		counter(ch, c.bookResyncs, st.Resyncs, x)
		counter(ch, c.bookApplied, st.Applied, x)
		counter(ch, c.bookCrossed, st.Crossed, x)
		counter(ch, c.bookBadDiffs, st.BadDiffs, x)
	}
	if n := c.src.Cluster; n != nil {
		gauge(ch, c.clusterReady, boolValue(n.Ready() == nil))
		counter(ch, c.clusterPanics, n.Panics())
		owned := n.Owned()
		gauge(ch, c.clusterOwned, len(owned))
		for _, f := range feeds {
			held := false
			for _, l := range owned {
				held = held || l.Exchange == f.Exchange
			}
			gauge(ch, c.clusterOwner, boolValue(held), f.Exchange)
		}
	}
}

func (c *collector) collectDownstream(ch chan<- prometheus.Metric, st downstream.Stats) {
	gauge(ch, c.connsCurrent, st.Conns)
	counter(ch, c.connsAccepted, st.Accepted)
	for reason, n := range st.Rejected {
		counter(ch, c.connsRejected, n, reason)
	}
	for reason, n := range st.Closed {
		counter(ch, c.connsClosed, n, reason)
	}
	counter(ch, c.slowCloses, st.Closed["slow_consumer"])
	for op, n := range st.Commands {
		counter(ch, c.commands, n.OK, op, "ok")
		counter(ch, c.commands, n.Error, op, "error")
	}
	counter(ch, c.framesOut, st.FramesOut)
	counter(ch, c.bytesOut, st.BytesOut)
	for reason, n := range st.Dropped {
		counter(ch, c.queueDrops, n, reason)
	}
	counter(ch, c.fannedOut, st.Messages)
	counter(ch, c.superseded, st.Superseded)
	counter(ch, c.historyErrors, st.HistoryErrors)
	for result, n := range st.Auth {
		counter(ch, c.authOutcomes, n, result)
	}
	counter(ch, c.internalErrors, st.InternalErrors)
	counter(ch, c.streamsRefused, st.StreamsRefused)
	gauge(ch, c.streamsCurrent, st.Streams)
	histogram(ch, c.latency, st.FanOutLatency)
	histogram(ch, c.fanoutDuration, st.FanOutDuration)
	counter(ch, c.clientWrites, st.Writes)
}

func (c *collector) collectFeed(ch chan<- prometheus.Metric, st upstream.Status) {
	ex := st.Exchange
	for kind, n := range st.MessagesIn {
		counter(ch, c.messagesIn, n, ex, kind)
	}
	for kind, n := range st.BytesIn {
		counter(ch, c.bytesIn, n, ex, kind)
	}
	gauge(ch, c.upUp, boolValue(st.State == upstream.StateConnected), ex)
	for _, s := range upstreamStates {
		gauge(ch, c.upState, boolValue(st.State == s), ex, string(s))
	}
	gauge(ch, c.upConns, st.Connections, ex)
	gauge(ch, c.upStreams, st.Streams, ex)
	gauge(ch, c.upFailed, len(st.Failed), ex)
	counter(ch, c.upReconnects, st.Reconnects, ex)
	counter(ch, c.upRotations, st.Rotations, ex)
	counter(ch, c.upOverflows, st.HandoverOverflows, ex)
	counter(ch, c.upRejected, st.Rejected, ex)
	counter(ch, c.upMalformed, st.Malformed, ex)
	counter(ch, c.upInternalErrors, st.InternalErrors, ex)
	gauge(ch, c.upLanes, st.Redundancy, ex)
	gauge(ch, c.upLanesUp, st.LanesUp, ex)
	counter(ch, c.upMerged, st.Dedup.Merged, ex)
	counter(ch, c.upDups, st.Dedup.Duplicates, ex)
	counter(ch, c.upForced, st.Dedup.Forced, ex)
	histogram(ch, c.upRequestTime, st.RequestLatency, ex)
}

// number is what the components count in.
type number interface {
	~int | ~int64 | ~uint64
}

func counter[N number](ch chan<- prometheus.Metric, d *prometheus.Desc, v N, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge[N number](ch chan<- prometheus.Metric, d *prometheus.Desc, v N, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
}

func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, s latency.Snapshot, labels ...string) {
	ch <- prometheus.MustNewConstHistogram(d, s.Count, s.Sum.Seconds(), s.Cumulative(), labels...)
}

func boolValue(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fqName finds a metric's name in its Desc's description.
var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// Families returns the names of the gateway's own metric families, sorted:
// what dashboards and alert rules may refer to (besides the Go and process
// collectors' go_* and process_*).
func Families() []string {
	ch := make(chan *prometheus.Desc, 256)
	go func() {
		NewCollector(Sources{}).Describe(ch)
		close(ch)
	}()
	out := []string{buildInfoName}
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}
