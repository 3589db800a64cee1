// Package exchangesim holds the exchange simulators: one package per
// exchange below this folder, each imitating that exchange's public
// market-data WebSocket streams and the few REST calls a gateway needs,
// over plain ws:// and http:// on a listener the caller gives it.
//
// [github.com/marketgate/marketgate/exchangesim/binancesim] imitates
// Binance Spot and Binance USD-M futures. Simulators for other exchanges
// (okxsim, bybitsim, …) go beside it, one package each.
//
// A simulator is the reference the gateway's upstream client is tested
// against, so it follows the exchange's protocol as documented and
// observed, not any client, and it counts every request and behaviour the
// real exchange would refuse or punish. Its strict mode and Violations()
// are the project's conformance suite: a test that drives the gateway
// against a simulator and then asserts zero violations proves that the
// gateway speaks the protocol within its limits.
//
// The simulators are used by the tests of upstream/, telemetry/ and
// cmd/marketgate (started in-process on a loopback listener), by
// marketgate --demo, and as a standalone server by cmd/exchangesim, which
// picks the exchange with --exchange.
//
// This package itself holds no code: it documents the folder.
package exchangesim
