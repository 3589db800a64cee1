// Package telemetry exposes the gateway's counters as Prometheus metrics.
//
// The components count with plain atomics and fixed label sets, and know
// nothing of Prometheus: [downstream.Server.Stats], [upstream.Feed.Status],
// [hub.Redis.Stats] or [hub.Memory.Stats], and [cluster.Node]. A
// collector reads those snapshots at scrape time, so a scrape costs the
// components a few atomic loads and their status locks, and nothing
// between scrapes. [Sources] names each component by the small interface
// the collector reads, so tests can hand it fakes.
//
//	reg := telemetry.NewRegistry(telemetry.Sources{
//		Downstream: srv,
//		Feeds:      telemetry.Feeds(feeds),
//		Hub:        redisHub,                // or memoryHub
//		Cluster:    telemetry.Cluster(node), // nil on a single node
//	})
//	mux.Handle("/metrics", telemetry.Handler(reg))
//
// Every label value comes from a fixed set: close, reject and drop
// reasons, command ops (anything a client sends that is not a known op is
// "other"), result, the configured exchange names, stream kinds and feed
// states. No metric is labelled by client, connection or symbol.
//
// # Metric families
//
// Browsers (package downstream):
//
//	marketgate_connections_current                  gauge    open browser WebSocket connections
//	marketgate_connections_accepted_total           counter  handshakes accepted
//	marketgate_connections_rejected_total{reason}   counter  handshakes refused: bad_request, not_running, draining,
//	                                                         origin, max_conns, per_ip, handshake, early_data
//	marketgate_connections_closed_total{reason}     counter  connections closed: eof, read_error, write_error, normal,
//	                                                         going_away, protocol_error, unsupported_data, invalid_payload,
//	                                                         policy_violation, message_too_big, slow_consumer,
//	                                                         keepalive_timeout, unauthorized (4001), token_expired
//	                                                         (4003), user_conn_limit (4029), try_again_later (1013),
//	                                                         other
//	marketgate_slow_consumer_closes_total           counter  closes with 4008: a write queue overflowed on a stream that
//	                                                         cannot be conflated (also in closed_total{reason="slow_consumer"})
//	marketgate_commands_total{op,result}            counter  client commands; op: subscribe, unsubscribe, list, ping,
//	                                                         auth (native), SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS,
//	                                                         SET_PROPERTY, GET_PROPERTY (Binance dialect), other;
//	                                                         result: ok, error
//	marketgate_auth_total{result}                   counter  browser authentication outcomes; result: ok, refreshed,
//	                                                         invalid, expired, over_limit, limiter_error, missing,
//	                                                         timeout, connection_expired, forbidden, disabled (no user
//	                                                         ids: users are in the control API's clients list)
//	marketgate_frames_out_total                     counter  stream frames queued on connections at fan-out (one per
//	                                                         subscriber per message; replies not included)
//	marketgate_bytes_out_total                      counter  their bytes, WebSocket headers included
//	marketgate_queue_drops_total{reason}            counter  messages dropped for a client that stayed connected;
//	                                                         reason: conflated (a newer value of the stream replaced it),
//	                                                         catchup (held during a history read, dropped after a gap)
//	marketgate_messages_fanned_out_total            counter  hub messages fanned out to this node's subscribers
//	marketgate_messages_superseded_total            counter  hub messages skipped: another publisher of the stream
//	                                                         delivered the event already, or took over
//	marketgate_internal_errors_total                counter  what should not happen (a full worker queue, a
//	                                                         recovered panic)
//	marketgate_streams_refused_total                counter  subscribes refused at the node's or an address's
//	                                                         distinct-stream limit, or by the hub
//	marketgate_streams_current                      gauge    streams with subscribers on this node
//	marketgate_end_to_end_latency_seconds           histogram exchange event time ("E") to fan-out on this node, once
//	                                                         per message: it ends when the frames are queued, before
//	                                                         the write, and includes the skew between the exchange's
//	                                                         clock and ours; buckets 0.5 ms to 2.5 s
//	marketgate_fanout_duration_seconds              histogram a message's arrival on this node (from the
//	                                                         exchange or the hub) to the end of the writes that
//	                                                         handed its last subscriber's frame to the kernel, once
//	                                                         per message with local subscribers; includes
//	                                                         --write-delay; frames a full socket buffer held back
//	                                                         (slow clients) are not waited for; buckets 50 µs to 1 s
//	marketgate_client_writes_total                  counter  write system calls to browsers (writev on Linux):
//	                                                         frames_out_total / client_writes_total is frames per write
//
// Exchanges (package upstream), labelled by the configured exchange name
// ("binance", "binance-futures"):
//
//	marketgate_messages_in_total{exchange,kind}     counter  text messages read from the exchange, by the kind of the
//	                                                         stream each went to (trade, aggTrade, diffDepth,
//	                                                         partialDepth, bookTicker, ticker, kline…, see
//	                                                         the dialect's Kinds); other: replies, events of streams no
//	                                                         longer subscribed, unreadable messages
//	marketgate_bytes_in_total{exchange,kind}        counter  their bytes (WebSocket payloads)
//	marketgate_upstream_up{exchange}                gauge    1 while every connection of the feed is up
//	marketgate_upstream_state{exchange,state}       gauge    1 for the feed's state: idle, loading, connecting,
//	                                                         connected, backoff, stopped
//	marketgate_upstream_connections{exchange}       gauge    open upstream connections, those being replaced included
//	marketgate_upstream_streams{exchange}           gauge    streams the exchange confirmed
//	marketgate_upstream_failed_streams{exchange}    gauge    desired streams refused or not subscribable
//	marketgate_upstream_reconnects_total{exchange}  counter  connections made after one ended unplanned
//	marketgate_upstream_rotations_total{exchange}   counter  connections replaced before their lifetime ended
//	marketgate_upstream_handover_overflows_total{exchange} counter streams switched with a gap (handover buffer full)
//	marketgate_upstream_rejected_streams_total{exchange}   counter stream names dropped as invalid or over the limit
//	marketgate_upstream_request_seconds{exchange}   histogram SUBSCRIBE/UNSUBSCRIBE sent to reply; 1 ms to 10 s
//	marketgate_upstream_malformed_messages_total{exchange} counter messages that could not be parsed; dropped
//	marketgate_upstream_internal_errors_total{exchange}    counter panics recovered in the feed (a bug); the
//	                                                         connection ended and was made again
//	marketgate_upstream_lanes{exchange}             gauge    connections carrying each stream (--<exchange>-redundancy)
//	marketgate_upstream_lanes_up{exchange}          gauge    lanes whose every connection is up
//	marketgate_upstream_events_merged_total{exchange}      counter events a redundant feed published once
//	marketgate_upstream_duplicates_dropped_total{exchange} counter lanes' events dropped: another lane's copy published
//	marketgate_upstream_lane_joins_forced_total{exchange}  counter lanes taken without proof of continuity
//
// Hub (package hub; with the in-process hub the error counters stay 0):
//
//	marketgate_hub_published_total                  counter  messages accepted for fan-out (by Redis, in a cluster)
//	marketgate_hub_publish_errors_total             counter  messages that could not be sent, or that a full publish queue dropped (Redis slower than the exchange): lost
//	marketgate_hub_received_total                   counter  messages received for delivery (Redis: off the
//	                                                         subscriber connections; in process: with a receiver)
//	marketgate_hub_decode_errors_total              counter  malformed messages received and dropped
//	marketgate_hub_subscribe_errors_total           counter  failed Redis SUBSCRIBE/UNSUBSCRIBE commands (retried)
//	marketgate_hub_internal_errors_total            counter  panics recovered in receivers (a bug); delivery went on
//
// Cluster (package cluster; only with Sources.Cluster):
//
//	marketgate_cluster_ready                        gauge    1 while this node's heartbeats reach Redis
//	marketgate_cluster_owned_exchanges              gauge    exchanges whose upstream lease this node holds
//	marketgate_cluster_internal_errors_total        counter  panics recovered in the cluster's loops
//	marketgate_cluster_owner{exchange}              gauge    1 while this node holds the exchange's lease
//
// Build ([NewRegistry] only, from [BuildInfo]; its labels are the
// running binary's, one series):
//
//	marketgate_build_info{version,revision,goversion} gauge  always 1
//
// Runtime: the go_* families of the Go collector (goroutines, GC, memory,
// scheduler) and the process_* families of the process collector (CPU,
// resident memory, open descriptors).
package telemetry
