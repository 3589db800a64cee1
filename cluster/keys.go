package cluster

import (
	"strconv"
	"strings"
)

// clusterTag is the hash tag in every coordination key. Redis Cluster
// hashes only the part between the first braces, so all the keys share
// one slot and a script or MULTI may touch several of them.
const clusterTag = "{cluster}"

// keyspace names the coordination keys under one prefix:
// "<prefix>{cluster}:<kind>[:<name>]".
type keyspace struct {
	base string // prefix + clusterTag + ":"
}

// newKeyspace returns the keyspace of prefix, which must not contain '{'
// or '}' ([New] checks that).
func newKeyspace(prefix string) keyspace {
	return keyspace{base: prefix + clusterTag + ":"}
}

// nodes is the ZSET of live nodes, scored by their last heartbeat in Unix
// milliseconds on Redis's clock.
func (k keyspace) nodes() string { return k.base + "nodes" }

// demand is the SET of the stream keys node wants carried.
func (k keyspace) demand(node string) string { return k.base + "demand:" + node }

// exchange returns the keys of one exchange's lease.
func (k keyspace) exchange(name string) exchangeKeys {
	return exchangeKeys{
		lease:    k.base + "lease:" + name,
		next:     k.base + "next:" + name,
		handover: k.base + "handover:" + name,
		fence:    k.base + "fence:" + name,
	}
}

// exchangeKeys are the keys of one exchange's upstream ownership.
type exchangeKeys struct {
	// lease holds the owner's lease value, with a TTL.
	lease string
	// next holds the value of the successor claimed during a handover.
	next string
	// handover holds the owner's lease value while it hands over.
	handover string
	// fence is the counter the fencing tokens come from.
	fence string
}

// script returns the keys in the order every script takes them.
func (k exchangeKeys) script() []string {
	return []string{k.lease, k.next, k.handover, k.fence}
}

// leaseValue is the value of a lease or successor key: "<node>|<token>".
func leaseValue(node string, token int64) string {
	return node + "|" + strconv.FormatInt(token, 10)
}

// parseLeaseValue splits a lease value into its node and fencing token.
// Node IDs contain no '|' ([New] checks that), but the last one is taken
// anyway.
func parseLeaseValue(v string) (node string, token int64, ok bool) {
	i := strings.LastIndexByte(v, '|')
	if i <= 0 {
		return "", 0, false
	}
	t, err := strconv.ParseInt(v[i+1:], 10, 64)
	if err != nil || t <= 0 {
		return "", 0, false
	}
	return v[:i], t, true
}

// streamExchange returns the exchange of a stream key "<exchange>:<name>".
func streamExchange(key string) (string, bool) {
	ex, name, ok := strings.Cut(key, ":")
	if !ok || ex == "" || name == "" {
		return "", false
	}
	return ex, true
}
