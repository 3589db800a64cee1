#!/usr/bin/env bash
# bench/run.sh: marketgate against the gorilla/websocket baseline
# (bench/gorilla), both fed by the same exchange simulator, measured by
# cmd/wsbench in one run:
#
#   (a) idle:    N connections that subscribe nothing: server RSS per
#                connection, threads, goroutines;
#   (b) fan-out: S subscribers spread over a few hot streams, at each
#                simulator tick of TICKS: delivered frames/s against what was
#                offered, frames per server CPU-second, latency p50/p99/p99.9;
#
# then the ratios marketgate/baseline. Everything listens on 127.0.0.1 and
# the clients dial from 127.0.0.2-127.0.0.50. Every process started here is
# stopped on exit, however the script ends. Needs Go, curl and jq.
#
#   bench/run.sh                                  # defaults: about 4.5 minutes
#   N=2000 S=1000 DURATION=10s bench/run.sh       # a quick check
#
# Parameters (environment):
#   N=15000          idle connections per server
#   S=10000          fan-out subscribers per server
#   KINDS="depth trade"
#                    the workloads, each measured on both servers at every tick:
#                    depth is the 100ms diff depth of the 5 simulated symbols,
#                    each pushed once per tick (≈255 bytes a frame), so the
#                    offered load is exactly S*PER_CONN/TICK frames/s and the
#                    same for both servers; trade is their trade streams, burstier
#                    (0–30 events a tick, 2–3 on average), so it varies between runs.
#   STREAMS=…        hot stream keys instead of KINDS (one workload, "custom")
#   SYMBOLS=BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT
#                    the simulator's symbols (STREAMS should name theirs)
#   MG_CPUS=0        CPUs (taskset -c) of the servers under test (marketgate and
#                    the baseline, which never run a measurement at once);
#   BENCH_CPUS=1     CPUs of wsbench and the simulator. Apart, the load
#                    generator cannot steal the server's cores, and its own
#                    limit shows in its warnings. Empty (either): no pinning;
#                    pinning is skipped on a machine with one CPU or no taskset.
#   MG_GOMAXPROCS=   GOMAXPROCS of marketgate (empty: Go's default, its CPUs)
#   WRITE_DELAY=     marketgate's --write-delay (empty: its default)
#   BASELINE=1       0: measure marketgate alone (the gorilla rows show n/a)
#   SAMPLE=50        wsbench connections that parse every message for latency;
#                    the others only count frames (--others count). 0: all parse.
#   PER_CONN=1       streams per subscriber
#   TICKS="200ms 100ms 50ms"
#                    simulator ticks to measure fan-out at, one stack (simulator
#                    and both servers, restarted) each; the first also serves the
#                    idle runs. A tick stands for 100ms of Binance time. On 2 cores
#                    with S=10000 (50k, 100k and 200k frames/s): both servers keep
#                    up at 200ms, the baseline falls behind at 100ms.
#   STAGGER=1        the simulator spreads the symbols over the tick (symbol i
#                    pushes at i/n of it), as a real exchange's streams are not
#                    in step; 0 pushes every symbol at the tick's start, one
#                    burst of all S frames at once
#   MICRO=1          event times in microseconds (timeUnit=MICROSECOND), so
#                    latency is measured to the microsecond; 0: milliseconds
#   DURATION=15s     fan-out measured window;  IDLE_DURATION=5s idle window
#   WARMUP=5s        wait after the ramp before measuring
#   RATE=3000        connections opened per second
#   PROCS=2          wsbench processes (each holds N/PROCS descriptors)
#   SOURCES=127.0.0.2-127.0.0.50
#   QUIET_WAIT=60    before each measurement, wait up to this many seconds for
#                    the machine to be quiet (under half a busy core): others'
#                    jobs on a shared machine distort every figure
#   PORT=18500       first of the ports used (PORT..PORT+3)
#   OUT=…            directory for binaries, logs and JSON reports (default: a new temp dir)
#   REPORT_ONLY=1    print the table of the reports already in OUT, run nothing
#   MG_SRC=<repo>    source tree marketgate is built from (e.g. a `git archive HEAD` copy)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
N=${N:-15000}
S=${S:-10000}
SYMBOLS=${SYMBOLS:-BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT}
KINDS=${KINDS:-depth trade}
STREAMS=${STREAMS:-}
if [[ -n $STREAMS ]]; then KINDS=custom; fi
MG_CPUS=${MG_CPUS-0}
BENCH_CPUS=${BENCH_CPUS-1}
MG_GOMAXPROCS=${MG_GOMAXPROCS:-}
WRITE_DELAY=${WRITE_DELAY:-}
SAMPLE=${SAMPLE:-50}
BASELINE=${BASELINE:-1}
PER_CONN=${PER_CONN:-1}
TICKS=${TICKS:-200ms 100ms 50ms}
STAGGER=${STAGGER:-1}
MICRO=${MICRO:-1}
DURATION=${DURATION:-15s}
IDLE_DURATION=${IDLE_DURATION:-5s}
WARMUP=${WARMUP:-5s}
RATE=${RATE:-3000}
PROCS=${PROCS:-2}
SOURCES=${SOURCES:-127.0.0.2-127.0.0.50}
QUIET_WAIT=${QUIET_WAIT:-60}
PORT=${PORT:-18500}
OUT=${OUT:-$(mktemp -d /tmp/marketgate-bench.XXXXXX)}
MG_SRC=${MG_SRC:-$repo}
REPORT_ONLY=${REPORT_ONLY:-0}

sim_port=$PORT mg_port=$((PORT + 1)) mg_admin=$((PORT + 2)) gor_port=$((PORT + 3))
mkdir -p "$OUT/bin"
trap 'trap - EXIT INT TERM; stop_all' EXIT
trap 'exit 130' INT TERM

for tool in go curl jq; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is needed" >&2; exit 2; }
done
# Each server holds one descriptor per connection; so does each wsbench
# process for its share.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)
max_conns=$((N > S ? N : S))
if ((max_conns + 100 > limit)); then
	echo "bench: N=$N / S=$S need $((max_conns + 100)) descriptors per server, the limit is $limit" >&2
	exit 2
fi
if (((max_conns + PROCS - 1) / PROCS + 100 > limit)); then
	echo "bench: raise PROCS: $max_conns connections over $PROCS wsbench processes exceed $limit descriptors each" >&2
	exit 2
fi

if ((!REPORT_ONLY)); then
	log "building into $OUT/bin (marketgate from $MG_SRC)"
	(cd "$repo" && go build -o "$OUT/bin/" ./cmd/exchangesim ./cmd/wsbench ./bench/gorilla)
	(cd "$MG_SRC" && go build -o "$OUT/bin/" ./cmd/marketgate)
fi


mg_flags=()
mg_help=$("$OUT/bin/marketgate" --help 2>&1 || true)
# The browser limits are flags since 7ecafc4; older trees run with their defaults.
if grep -q -- '--max-conns ' <<<"$mg_help"; then mg_flags+=(--max-conns "$((max_conns + 100))"); fi
if grep -q -- '--max-conns-per-ip ' <<<"$mg_help"; then mg_flags+=(--max-conns-per-ip "$((max_conns + 100))"); fi
if [[ -n $WRITE_DELAY ]]; then mg_flags+=(--write-delay "$WRITE_DELAY"); fi
sim_flags=() gor_flags=()
# Pinning: servers on MG_CPUS, wsbench and the simulator on BENCH_CPUS.
mg_pin=() bench_pin=()
if [[ -n $MG_CPUS && -n $BENCH_CPUS ]] && (($(nproc) > 1)) && command -v taskset >/dev/null; then
	mg_pin=(taskset -c "$MG_CPUS") bench_pin=(taskset -c "$BENCH_CPUS")
fi
mg_env=()
if [[ -n $MG_GOMAXPROCS ]]; then mg_env=(env "GOMAXPROCS=$MG_GOMAXPROCS"); fi
# kind_streams KIND: the stream keys of a workload.
kind_streams() {
	local sym out=() suffix
	case $1 in
	custom) echo "$STREAMS"; return ;;
	depth) suffix=@depth@100ms ;;
	trade) suffix=@trade ;;
	*) echo "bench: unknown kind $1 (want depth or trade)" >&2; exit 2 ;;
	esac
	for sym in ${SYMBOLS//,/ }; do out+=("binance:${sym,,}$suffix"); done
	(IFS=,; echo "${out[*]}")
}
if ((STAGGER)); then sim_flags+=(--stagger); fi
if ((MICRO)); then
	grep -q -- '--binance-microsecond-times' <<<"$mg_help" || { echo "bench: MICRO=1 needs a marketgate with --binance-microsecond-times" >&2; exit 2; }
	mg_flags+=(--binance-microsecond-times)
	gor_flags+=(--microsecond-times)
fi

# start_stack TICK: the simulator, marketgate and the baseline; sets sim_pid,
# mg_pid, gor_pid and mg_goroutines.
start_stack() {
	local tick=$1
	log "simulator on 127.0.0.1:$sim_port, tick $tick"
	"${bench_pin[@]}" "$OUT/bin/exchangesim" --listen "127.0.0.1:$sim_port" --symbols "$SYMBOLS" \
		--tick-interval "$tick" --max-connection-attempts -1 --log-level warn "${sim_flags[@]}" >>"$OUT/sim.log" 2>&1 &
	sim_pid=$!
	pids+=("$sim_pid")
	wait_http "http://127.0.0.1:$sim_port/api/v3/exchangeInfo"

	log "marketgate on 127.0.0.1:$mg_port ${mg_flags[*]}"
	"${mg_pin[@]}" "${mg_env[@]}" "$OUT/bin/marketgate" --listen "127.0.0.1:$mg_port" --admin-listen "127.0.0.1:$mg_admin" \
		--binance-url "ws://127.0.0.1:$sim_port" --binance-rest-url "http://127.0.0.1:$sim_port" \
		--binance-futures-url "" --log-level warn "${mg_flags[@]}" >>"$OUT/marketgate.log" 2>&1 &
	mg_pid=$!
	pids+=("$mg_pid")
	wait_http "http://127.0.0.1:$mg_port/readyz"

	log "gorilla baseline on 127.0.0.1:$gor_port"
	"${mg_pin[@]}" "$OUT/bin/gorilla" --listen "127.0.0.1:$gor_port" --upstream "ws://127.0.0.1:$sim_port" "${gor_flags[@]}" >>"$OUT/gorilla.log" 2>&1 &
	gor_pid=$!
	pids+=("$gor_pid")
	wait_http "http://127.0.0.1:$gor_port/debug/goroutines"

	# marketgate's goroutine count, where its control listener serves /metrics,
	# and its fan-out histogram where it has one.
	mg_goroutines="" mg_metrics=""
	local m
	m=$(curl -fsS "http://127.0.0.1:$mg_admin/metrics" 2>/dev/null || true)
	if grep -q '^go_goroutines ' <<<"$m"; then mg_goroutines="http://127.0.0.1:$mg_admin/metrics"; fi
	if grep -q '^marketgate_fanout_duration_seconds_count ' <<<"$m"; then mg_metrics="http://127.0.0.1:$mg_admin/metrics"; fi
}



# bench NAME PORT PID OTHER_SERVER_PID GOROUTINES_URL WSBENCH_FLAGS...: one
# wsbench run, report in $OUT/NAME.json, progress in $OUT/NAME.log.
bench() {
	local name=$1 port=$2 pid=$3 other=$4 gurl=$5
	shift 5
	quiet
	log "$name"
	if ! "${bench_pin[@]}" "$OUT/bin/wsbench" --url "ws://127.0.0.1:$port/ws" --pid "$pid" --goroutines-url "$gurl" \
		--setup-pids "$sim_pid,$other" \
		--sources "$SOURCES" --procs "$PROCS" --rate "$RATE" --warmup "$WARMUP" --json "$@" \
		>"$OUT/$name.json" 2> >(tee "$OUT/$name.log" >&2); then
		log "$name failed, see $OUT/$name.log"
		echo '{}' >"$OUT/$name.json"
	fi
	# Let the server see every close (and marketgate's 5 s linger pass)
	# before the next run.
	sleep 6
}

gor_goroutines() { echo "http://127.0.0.1:$gor_port/debug/goroutines"; }
idle=(--conns "$N" --idle --duration "$IDLE_DURATION")
first=1
((REPORT_ONLY)) && TICKS_RUN="" || TICKS_RUN=$TICKS
for tick in $TICKS_RUN; do
	start_stack "$tick"
	if ((first)) && ((N > 0)); then
		bench mg-idle "$mg_port" "$mg_pid" "$gor_pid" "$mg_goroutines" "${idle[@]}"
		if ((BASELINE)); then bench gorilla-idle "$gor_port" "$gor_pid" "$mg_pid" "$(gor_goroutines)" "${idle[@]}"; fi
	fi
	first=0
	for kind in $KINDS; do
		fan=(--conns "$S" --streams "$(kind_streams "$kind")" --per-conn "$PER_CONN" --duration "$DURATION"
			--sample-conns "$SAMPLE" --others count)
		mgm=()
		if [[ -n $mg_metrics ]]; then mgm=(--metrics-url "$mg_metrics"); fi
		# marketgate first: the baseline never unsubscribes upstream, so its
		# upstream carries nothing while marketgate is measured.
		bench "mg-fanout-$kind-$tick" "$mg_port" "$mg_pid" "$gor_pid" "$mg_goroutines" "${fan[@]}" "${mgm[@]}"
		if ((BASELINE)); then bench "gorilla-fanout-$kind-$tick" "$gor_port" "$gor_pid" "$mg_pid" "$(gor_goroutines)" "${fan[@]}"; fi
	done
	stop_all
done

# A missing figure (no report, no goroutine count) is -1 and shows as n/a.
j() { jq -r "($2) // -1" "$OUT/$1.json" 2>/dev/null || echo -1; }
fmt() { if [[ $2 == -1 ]]; then echo n/a; else printf "$1" "$2"; fi; }
row() { # label, jq expression, printf format, report suffix
	local m g
	m=$(j "mg-$4" "$2")
	g=$(j "gorilla-$4" "$2")
	printf "%-38s %14s %14s %9s\n" "$1" "$(fmt "$3" "$m")" "$(fmt "$3" "$g")" \
		"$(awk -v m="$m" -v g="$g" 'BEGIN { if (g + 0 == 0 || m < 0 || g < 0) print "-"; else printf "%.2f", m / g }')"
}
errors='.dial_errors + .handshake_errors + .subscribe_errors + .dropped + .stream_errors'
{
	echo
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(go version | cut -d' ' -f3); ulimit -n $limit"
	echo "N=$N S=$S PER_CONN=$PER_CONN TICKS=\"$TICKS\" KINDS=\"$KINDS\" STAGGER=$STAGGER MICRO=$MICRO DURATION=$DURATION RATE=$RATE PROCS=$PROCS SAMPLE=$SAMPLE"
	echo "pinned: servers ${mg_pin[*]:-no}, wsbench and simulator ${bench_pin[*]:-no}; marketgate GOMAXPROCS=${MG_GOMAXPROCS:-default} ${mg_flags[*]}"
	echo "marketgate from $MG_SRC; reports in $OUT"
	echo
	printf "%-40s %14s %14s %9s\n" "" marketgate gorilla ratio
	row "idle: connections open" '.conns_open' '%d' idle
	row "idle: RSS per connection (bytes)" '.server.rss_per_conn_bytes' '%.0f' idle
	row "idle: RSS total (MiB)" '.server.rss_bytes / 1048576' '%.1f' idle
	row "idle: OS threads" '.server.threads' '%d' idle
	row "idle: goroutines" '.server.goroutines' '%d' idle
	row "idle: errors" "$errors" '%d' idle
	for tick in $TICKS; do for kind in $KINDS; do
		f="fanout-$kind-$tick"
		echo
		if [[ $kind == depth && $tick =~ ^([0-9]+)ms$ ]]; then
			echo "$kind fan-out at tick $tick: offered $((S * PER_CONN * 1000 / BASH_REMATCH[1])) frames/s"
		else
			echo "$kind fan-out at tick $tick: $(kind_streams "$kind")"
		fi
		row "  subscribers open" '.conns_open' '%d' "$f"
		row "  delivered frames/s" '.msgs_per_second' '%.0f' "$f"
		row "  server CPU (cores)" '.server.cpu_utilization' '%.2f' "$f"
		row "  of which system (cores)" '.server.cpu_sys_seconds / .window_seconds' '%.2f' "$f"
		row "  frames per server CPU-second" '.server.msgs_per_cpu_second' '%.0f' "$f"
		row "  latency p50 (ms)" '.latency_ms.p50' '%.1f' "$f"
		row "  latency p99 (ms)" '.latency_ms.p99' '%.1f' "$f"
		row "  latency p99.9 (ms)" '.latency_ms.p999' '%.1f' "$f"
		row "  server fan-out p50 (ms)" '.server_fanout.p50_ms' '%.2f' "$f"
		row "  server fan-out p99 (ms)" '.server_fanout.p99_ms' '%.2f' "$f"
		row "  frames per write" '.server_fanout.frames_per_write' '%.2f' "$f"
		row "  wsbench warnings" '.warnings | length' '%d' "$f"
		row "  server RSS (MiB)" '.server.rss_bytes / 1048576' '%.1f' "$f"
		row "  wsbench CPU (cores)" '.client_cpu_seconds / .window_seconds' '%.2f' "$f"
		row "  machine busy (cores)" '.host_cpu_cores' '%.2f' "$f"
		row "  other processes (cores, want 0)" '.machine.other_cores' '%.2f' "$f"
		row "  errors" "$errors" '%d' "$f"
		row "  seq gaps" '.seq_gaps' '%d' "$f"
	done; done
	echo
	if ((MICRO)); then unit="microseconds"; else unit="whole milliseconds (+0–1 ms)"; fi
	echo "ratio = marketgate / gorilla. Latency is now − E with E in $unit, measured on"
	echo "the SAMPLE connections that parse (the others only count frames); server fan-out is marketgate's"
	echo "marketgate_fanout_duration_seconds over the window; a p99.9 near or above 1 s, or fewer frames"
	echo "delivered than offered, means the server did not keep up (its backlog grew)."
	echo "other processes: CPU of processes that are not part of the run; above ~0.05 someone else's"
	echo "job shared the cores and the figures of that row are doubtful."
} | tee "$OUT/summary.txt"
