package cluster

import "github.com/redis/go-redis/v9"

// The scripts all take the keys of one exchange in the order of
// [exchangeKeys.script]: KEYS[1] lease, KEYS[2] next, KEYS[3] handover,
// KEYS[4] fence. They share one hash slot, so the scripts run on Redis
// Cluster too. Values are "<node>|<token>"; TTLs are in milliseconds.

// contestScript is what a node that holds nothing of an exchange runs every
// poll. ARGV: node, lease TTL, floor (the highest token the node has seen).
//
// A free lease (no lease and no pending successor) is taken with a new
// fencing token: {1, token, ""}. A lease being handed over (handover equals
// lease) with no successor yet makes the caller the successor in next:
// {2, token, lease}. Otherwise {0, 0, lease or next}, so that the caller
// learns the current token.
//
// A token is the highest of INCR fence, floor+1 and Redis's clock in Unix
// milliseconds (TIME), and is written back to fence. The clock keeps the
// tokens increasing when Redis lost its data (a restart without
// persistence, a failover to a lagging replica, FLUSHALL) and no node
// that saw the last token wins: a new token is then the time of its
// claim, later than any earlier claim's. Only a Redis clock stepped back by
// more than the time since the last claim, together with that data loss
// and a winner with a stale floor, could make a token go back. Tokens
// stay below 2^53, so Lua's numbers hold them exactly; they are formatted
// with %d, never with Lua's default %.14g.
var contestScript = redis.NewScript(`
local lease = redis.call('GET', KEYS[1])
local nxt = redis.call('GET', KEYS[2])
local function token()
  local now = redis.call('TIME')
  local t = math.max(redis.call('INCR', KEYS[4]), tonumber(ARGV[3]) + 1,
    tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
  t = string.format('%d', t)
  redis.call('SET', KEYS[4], t)
  return t
end
if not lease then
  if nxt then return {0, 0, nxt} end
  local t = token()
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. t, 'PX', ARGV[2])
  return {1, tonumber(t), ''}
end
if not nxt and redis.call('GET', KEYS[3]) == lease then
  local t = token()
  redis.call('SET', KEYS[2], ARGV[1] .. '|' .. t, 'PX', ARGV[2])
  return {2, tonumber(t), lease}
end
return {0, 0, lease}
`)

// renewScript extends the lease if it still holds the caller's value.
// ARGV: value, lease TTL. Returns 1 if renewed, 0 if the lease is gone or
// someone else's.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// renewNextScript is what a handover successor runs instead of renewing a
// lease. ARGV: value, lease TTL.
//
// Returns 2 when the caller owns the lease now: the old owner replaced the
// lease with the caller's value (the lease is renewed), or the lease expired
// while the caller was next (the old owner died mid-handover; the caller
// takes the lease). Returns 1 while the caller is still next (next is
// renewed), 0 when it is not next any more.
var renewNextScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
  return 2
end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('DEL', KEYS[2], KEYS[3])
  return 2
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`)

// announceScript starts a handover: if the lease is still the caller's,
// handover is set to it. ARGV: value, handover TTL. Returns 1 or 0.
var announceScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
return 1
`)

// releaseScript gives up whatever the caller holds of an exchange. ARGV:
// value, lease TTL.
//
// If the lease is the caller's and a successor is in next, the lease
// becomes the successor's value (with a fresh TTL) and next and handover
// go: {1, successor}. If the lease is the caller's and there is no
// successor, the lease and the caller's handover go: {2, ""}. If only next
// was the caller's (a successor giving up), next goes: {3, ""}. Otherwise
// nothing of the caller's was left: {0, ""}.
var releaseScript = redis.NewScript(`
local r = 0
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  r = 3
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  local nxt = redis.call('GET', KEYS[2])
  if nxt then
    redis.call('SET', KEYS[1], nxt, 'PX', ARGV[2])
    redis.call('DEL', KEYS[2], KEYS[3])
    return {1, nxt}
  end
  redis.call('DEL', KEYS[1])
  r = 2
end
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return {r, ''}
`)

// The registry scripts keep the nodes ZSET (KEYS[1]) scored by each node's
// last heartbeat on Redis's clock (TIME, Unix milliseconds), never on the
// nodes' own clocks, so that nodes whose clocks differ agree on who is
// live. Both remove the nodes whose heartbeat is older than ARGV[1]
// milliseconds.

// heartbeatScript writes one node's heartbeat and demand. KEYS[1] nodes,
// KEYS[2] the node's demand SET. ARGV: liveness TTL, node, then the demand
// members, if any. The demand set is replaced and expires after the TTL;
// the node's heartbeat is set to now. Returns 1 if the node was not in the
// registry before (its first heartbeat, or it had been removed as dead or
// lost with Redis's data), else 0.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', KEYS[2])
local n = #ARGV
for i = 3, n, 1000 do
  redis.call('SADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, n)))
end
if n >= 3 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - tonumber(ARGV[1])))
return redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[2])
`)

// liveScript returns the live nodes, KEYS[1]'s members with their
// heartbeats, flat: {node, score, node, score, ...}. ARGV: liveness TTL.
var liveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - tonumber(ARGV[1])))
return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
`)
