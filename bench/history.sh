#!/usr/bin/env bash
# bench/history.sh: what numbering and history (issue 14) cost, measured in
# one run on this machine against the gateway as it was before ("today's":
# one plain PUBLISH per message). Configurations, run in turn ROUNDS times
# (a b c d a b c d …), each with a fresh marketgate and an emptied Redis:
#
#   (a) redis-h1000  marketgate --redis, --history-size HISTORY (1000)
#   (b) redis-h0     marketgate --redis, --history-size 0 (positions, no XADD)
#   (c) memory-h1000 marketgate without Redis (in-process hub), history HISTORY
#   (d) redis-base   marketgate built from `git archive $BASE_REV` with --redis
#                    (skipped when BASE_REV is set empty)
#
# For each it runs cmd/wsbench in fan-out mode (S subscribers over the trade
# streams of the simulator's symbols) and reports delivered frames/s, the
# gateway's CPU-seconds (utime+stime of its /proc/<pid>/stat, from wsbench),
# frames per gateway CPU-second, latency p50/p99 (event time to client), and
# the Redis side over the same window: `INFO commandstats` calls divided by
# the events the hub published (marketgate_hub_published_total from the
# gateway's /metrics), and Redis's own CPU (INFO cpu, used_cpu_user +
# used_cpu_sys) per event. Commands a Lua script runs count in commandstats
# too; INFO itself (this script's) is left out. The gateway's health probe
# (one PUBLISH a second) is counted and is noise: 1/events-per-second.
#
# Everything listens on 127.0.0.1, clients dial from SOURCES; every process
# started here is stopped on exit. With taskset and 2+ CPUs, marketgate and
# redis-server run on CPU 0, wsbench and the simulator on CPU 1. Needs Go,
# redis-server, redis-cli, curl and jq.
#
#   bench/history.sh                           # defaults: about 4 minutes
#   S=1000 DURATION=5s ROUNDS=1 bench/history.sh
#   BASE_REV= bench/history.sh                 # without the old tree
#
# Parameters (environment):
#   S=2000           subscribers, spread evenly over STREAMS (one each)
#   TICK=50ms        simulator tick (trades: 0–30 a tick per symbol, 2–3 on average)
#   DURATION=10s     measured window (whole seconds);  WARMUP=3s after the ramp
#   ROUNDS=2         times each configuration is measured, alternating
#   HISTORY=1000     --history-size of (a) and (c)
#   BASE_REV=57e5dbe the commit before issue 14's work; empty: no (d)
#   SYMBOLS=BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT
#   STREAMS=binance:<symbol>@trade for each symbol
#   SEED=1           simulator seed
#   MICRO=1          event times in microseconds (both trees support it)
#   RATE=2000        connections opened per second;  PROCS=1 wsbench processes
#   SOURCES=127.0.0.2-127.0.0.20
#   QUIET_WAIT=20    wait up to this many seconds for a quiet machine before each run
#   PIN=1            pin with taskset (0: don't)
#   PORT=18600       first of the ports used (PORT..PORT+2); Redis gets a free one
#   OUT=…            binaries, logs, reports (default: a new temp dir)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
S=${S:-2000}
TICK=${TICK:-50ms}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-2}
HISTORY=${HISTORY:-1000}
BASE_REV=${BASE_REV-57e5dbe}
SYMBOLS=${SYMBOLS:-BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT}
if [[ -z ${STREAMS:-} ]]; then
	STREAMS=""
	for sym in ${SYMBOLS//,/ }; do STREAMS+="${STREAMS:+,}binance:${sym,,}@trade"; done
fi
SEED=${SEED:-1}
MICRO=${MICRO:-1}
RATE=${RATE:-2000}
PROCS=${PROCS:-1}
SOURCES=${SOURCES:-127.0.0.2-127.0.0.20}
QUIET_WAIT=${QUIET_WAIT:-20}
PIN=${PIN:-1}
PORT=${PORT:-18600}
OUT=${OUT:-$(mktemp -d /tmp/marketgate-history.XXXXXX)}

[[ $DURATION =~ ^([0-9]+)s$ ]] || { echo "bench: DURATION must be whole seconds (e.g. 10s)" >&2; exit 2; }
dur_s=${BASH_REMATCH[1]}
[[ $WARMUP =~ ^([0-9]+)s$ ]] || { echo "bench: WARMUP must be whole seconds (e.g. 3s)" >&2; exit 2; }
warm_s=${BASH_REMATCH[1]}

sim_port=$PORT mg_port=$((PORT + 1)) mg_admin=$((PORT + 2))
mkdir -p "$OUT/bin/cur" "$OUT/bin/base"
trap 'trap - EXIT INT TERM; stop_all' EXIT
trap 'exit 130' INT TERM


for tool in go curl jq redis-server redis-cli; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is needed" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if ((S + 200 > $(ulimit -n))); then
	echo "bench: S=$S needs $((S + 200)) descriptors, the limit is $(ulimit -n)" >&2
	exit 2
fi

pin0=() pin1=() pinning="not pinned"
if ((PIN)) && command -v taskset >/dev/null && (($(nproc) >= 2)); then
	pin0=(taskset -c 0) pin1=(taskset -c 1)
	pinning="pinned: marketgate + redis-server on CPU 0, wsbench + simulator on CPU 1"
fi

log "building into $OUT/bin"
(cd "$repo" && go build -o "$OUT/bin/cur/" ./cmd/marketgate ./cmd/exchangesim ./cmd/wsbench)
if [[ -n $BASE_REV ]]; then
	base_rev=$(git -C "$repo" rev-parse --short "$BASE_REV^{commit}")
	mkdir -p "$OUT/src-base"
	git -C "$repo" archive "$base_rev" | tar -x -C "$OUT/src-base"
	(cd "$OUT/src-base" && go build -o "$OUT/bin/base/" ./cmd/marketgate)
fi


# free_port: a port nothing on 127.0.0.1 listens on.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
	done
	return 1
}

rport=$(free_port)
rcli() { redis-cli -h 127.0.0.1 -p "$rport" "$@"; }
log "redis-server on 127.0.0.1:$rport"
"${pin0[@]}" redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
	--logfile "$OUT/redis.log" &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 100); do
	rcli ping >/dev/null 2>&1 && break
	sleep 0.1
done
rcli ping >/dev/null
redis_url="redis://127.0.0.1:$rport/0"

sim_flags=(--stagger)
log "simulator on 127.0.0.1:$sim_port, tick $TICK"
"${pin1[@]}" "$OUT/bin/cur/exchangesim" --listen "127.0.0.1:$sim_port" --symbols "$SYMBOLS" --seed "$SEED" \
	--tick-interval "$TICK" --max-connection-attempts -1 --log-level warn "${sim_flags[@]}" >>"$OUT/sim.log" 2>&1 &
sim_pid=$!
pids+=("$sim_pid")
wait_http "http://127.0.0.1:$sim_port/api/v3/exchangeInfo"


# snapshot FILE: the hub's published counter, Redis's CPU and command calls,
# as "key value" lines.
snapshot() {
	{
		printf 'events %s\n' "$(curl -fsS "http://127.0.0.1:$mg_admin/metrics" 2>/dev/null |
			awk '$1 == "marketgate_hub_published_total" { print $2; found = 1 } END { if (!found) print -1 }')"
		rcli info cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" { s += $2 } END { printf "redis_cpu %.6f\n", s }'
		rcli info commandstats | tr -d '\r' |
			awk -F'[:,=]' '/^cmdstat_/ { sub(/^cmdstat_/, "", $1); print "cmd." $1, $3 }'
	} >"$1"
}

# run CONFIG ROUND: one fresh marketgate, one wsbench fan-out run; results in
# $OUT/CONFIG-ROUND.{json,before,after,log}.
run() {
	local cfg=$1 round=$2 bin=$OUT/bin/cur/marketgate flags=() name=$1-$2
	case $cfg in
	redis-h$HISTORY) flags=(--redis "$redis_url" --history-size "$HISTORY") ;;
	redis-h0) flags=(--redis "$redis_url" --history-size 0) ;;
	memory-h$HISTORY) flags=(--history-size "$HISTORY") ;;
	redis-base) bin=$OUT/bin/base/marketgate flags=(--redis "$redis_url") ;;
	esac
	if ((MICRO)); then flags+=(--binance-microsecond-times); fi
	rcli flushall >/dev/null
	log "$name: marketgate ${flags[*]}"
	"${pin0[@]}" "$bin" --listen "127.0.0.1:$mg_port" --admin-listen "127.0.0.1:$mg_admin" \
		--binance-url "ws://127.0.0.1:$sim_port" --binance-rest-url "http://127.0.0.1:$sim_port" \
		--binance-futures-url "" --log-level warn --max-conns "$((S + 100))" --max-conns-per-ip "$((S + 100))" \
		"${flags[@]}" >>"$OUT/marketgate-$name.log" 2>&1 &
	local mg_pid=$!
	pids+=("$mg_pid")
	wait_http "http://127.0.0.1:$mg_port/readyz"
	quiet
	"${pin1[@]}" "$OUT/bin/cur/wsbench" --url "ws://127.0.0.1:$mg_port/ws" --pid "$mg_pid" \
		--goroutines-url "http://127.0.0.1:$mg_admin/metrics" --setup-pids "$sim_pid,$redis_pid" \
		--sources "$SOURCES" --procs "$PROCS" --rate "$RATE" --warmup "$WARMUP" --json \
		--conns "$S" --streams "$STREAMS" --duration "$DURATION" \
		>"$OUT/$name.json" 2>"$OUT/$name.log" &
	local ws_pid=$!
	pids+=("$ws_pid")
	# The window starts when wsbench logs "measuring" (on its 1 s progress
	# tick) and lasts DURATION: take the counters at both ends.
	local limit=$((S / RATE + warm_s + 60)) t=0
	until grep -q 'msg=measuring' "$OUT/$name.log" 2>/dev/null; do
		if ! kill -0 "$ws_pid" 2>/dev/null || ((t >= limit * 10)); then break; fi
		sleep 0.1
		t=$((t + 1))
	done
	snapshot "$OUT/$name.before"
	sleep "$dur_s"
	snapshot "$OUT/$name.after"
	# wsbench ends on its own after the window; bound the wait.
	for _ in $(seq 300); do kill -0 "$ws_pid" 2>/dev/null || break; sleep 0.1; done
	stop "$ws_pid" "$mg_pid"
	local keep=() p
	for p in "${pids[@]}"; do [[ $p == "$ws_pid" || $p == "$mg_pid" ]] || keep+=("$p"); done
	pids=("${keep[@]}")
	[[ -s $OUT/$name.json ]] || { log "$name: wsbench wrote no report, see $OUT/$name.log"; echo '{}' >"$OUT/$name.json"; }
	# Let the simulator see the upstream close before the next gateway.
	sleep 1
}

configs=("redis-h$HISTORY" redis-h0 "memory-h$HISTORY")
[[ -n $BASE_REV ]] && configs+=(redis-base)
for round in $(seq "$ROUNDS"); do
	for cfg in "${configs[@]}"; do run "$cfg" "$round"; done
done

# row NAME: one line of figures for $OUT/NAME.*; -1 means n/a.
# Fields: events/s frames/s cpu_s frames_per_cpu p50 p99 errors cmds/ev evalsha/ev
# publish/ev xadd/ev hset/ev redis_us/ev.
row() {
	local n=$1 ws
	ws=$(jq -r '[(.window_seconds // -1), (.msgs_per_second // -1), (.server.cpu_seconds // -1),
		(.server.msgs_per_cpu_second // -1), (.latency_ms.p50 // -1), (.latency_ms.p99 // -1),
		((.dial_errors // 0) + (.handshake_errors // 0) + (.subscribe_errors // 0) + (.dropped // 0) + (.stream_errors // 0) + (.seq_gaps // 0)),
		(.machine.other_cores // -1)] | @tsv' \
		"$OUT/$n.json" 2>/dev/null || echo "-1 -1 -1 -1 -1 -1 -1 -1")
	awk -v ws="$ws" -v dur="$dur_s" '
		FNR == NR { before[$1] = $2; next }
		{ after[$1] = $2 }
		END {
			split(ws, w, /[ \t]+/)
			ev = (before["events"] < 0 || after["events"] < 0) ? -1 : after["events"] - before["events"]
			total = 0
			for (k in after) if (k ~ /^cmd\./ && k != "cmd.info" && k != "cmd.flushall") {
				d[k] = after[k] - before[k]; total += d[k]
			}
			rcpu = after["redis_cpu"] - before["redis_cpu"]
			printf "%s %s %s %s %s %s %s %s", (ev < 0 ? -1 : ev / dur), w[2], w[3], w[4], w[5], w[6], w[7], ev
			if (ev > 0) printf " %s %s %s %s %s %s", total / ev, d["cmd.evalsha"] / ev, d["cmd.publish"] / ev,
				d["cmd.xadd"] / ev, d["cmd.hset"] / ev, rcpu * 1e6 / ev
			else printf " -1 -1 -1 -1 -1 -1"
			printf " %s\n", w[8]
		}' "$OUT/$n.before" "$OUT/$n.after"
}
# delta NAME: "key after-before" for every counter of one run.
delta() {
	awk 'FNR == NR { b[$1] = $2; next } { print $1, $2 - b[$1] }' "$OUT/$1.before" "$OUT/$1.after"
}
# breakdown NAME…: Redis calls per event by command, summed over the runs.
breakdown() {
	local n
	for n in "$@"; do delta "$n"; done | awk '
		$1 == "events" { if ($2 < 0) bad = 1; ev += $2; next }
		$1 ~ /^cmd\./ && $1 != "cmd.info" && $1 != "cmd.flushall" { c[substr($1, 5)] += $2 }
		END {
			if (bad || ev <= 0) { print "-1 n/a"; exit }
			for (k in c) if (c[k] > 0) printf "%.2f %s\n", c[k] / ev, k
		}' | sort -k1,1nr -k2 | awk '$1 < 0 { na = 1; exit } { s = s (NR > 1 ? ", " : "") $2 " " $1 } END { print (na ? "n/a" : NR ? s : "none") }'
}

{
	echo
	echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(go version | cut -d' ' -f3), $(redis-server --version | awk '{ print $3 }')"
	echo "marketgate $(git -C "$repo" rev-parse --short HEAD)${BASE_REV:+; base $base_rev}; $pinning"
	echo "S=$S TICK=$TICK DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS HISTORY=$HISTORY SEED=$SEED STREAMS=$STREAMS"
	echo "reports in $OUT"
	echo
	printf "%-13s %5s %8s %9s %8s %9s %8s %8s %6s %9s %8s %8s %8s %8s %11s %6s\n" \
		config round events/s frames/s "cpu s" frames/cpu "p50 ms" "p99 ms" errors \
		"redis/ev" evalsha publish xadd hset "redis µs/ev" other
	for cfg in "${configs[@]}"; do
		rows=()
		for round in $(seq "$ROUNDS"); do
			r=$(row "$cfg-$round")
			rows+=("$r")
			printf '%s %s %s\n' "$cfg" "$round" "$r"
		done
		printf '%s\n' "${rows[@]}" | awk -v c="$cfg" '
			{ for (i = 1; i <= NF; i++) { if ($i < 0) bad[i] = 1; s[i] += $i } n++ }
			END { printf "%s mean", c; for (i = 1; i <= NF; i++) printf " %s", (bad[i] ? -1 : s[i] / n); printf "\n" }'
	done | awk '
		function f(v, fmt) { return v < 0 ? "n/a" : sprintf(fmt, v) }
		{ printf "%-13s %5s %8s %9s %8s %9s %8s %8s %6s %9s %8s %8s %8s %8s %11s %6s\n", $1, $2,
			f($3, "%.1f"), f($4, "%.0f"), f($5, "%.2f"), f($6, "%.0f"), f($7, "%.1f"), f($8, "%.1f"),
			f($9, "%d"), f($11, "%.2f"), f($12, "%.2f"), f($13, "%.2f"), f($14, "%.2f"), f($15, "%.2f"), f($16, "%.1f"), f($17, "%.2f") }'
	echo
	echo "Redis calls per event by command (all rounds):"
	for cfg in "${configs[@]}"; do
		names=()
		for round in $(seq "$ROUNDS"); do names+=("$cfg-$round"); done
		printf '  %-13s %s\n' "$cfg" "$(breakdown "${names[@]}")"
	done
	echo
	echo "events/s: marketgate_hub_published_total over the window; frames/s: delivered to the S clients;"
	echo "cpu s: the gateway's CPU-seconds in the window; redis/ev: Redis commands (script calls included,"
	echo "INFO/FLUSHALL excluded) per published event; redis µs/ev: Redis CPU (user+sys) per event."
	echo "errors: wsbench dial/handshake/subscribe errors, drops and sequence gaps (want 0)."
	echo "other: cores used by processes outside the run (not the gateway, Redis, simulator or wsbench);"
	echo "above ~0.05 someone else's job shared the CPUs and that row is doubtful."
} | tee "$OUT/summary.txt"
