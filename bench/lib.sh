# bench/lib.sh: what the bench scripts share. Sourced, not run; the
# caller sets QUIET_WAIT and keeps the processes it starts in pids.

pids=()

# stop PID…: TERM, KILL what is left after 5 s.
stop() {
	local pid
	for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "$@"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}

# stop_all: stop every process started here.
stop_all() {
	if ((${#pids[@]})); then stop "${pids[@]}"; fi
	pids=()
}

log() { printf '== %s\n' "$*" >&2; }

# wait_http URL: until it answers 200, at most 30 s.
wait_http() {
	for _ in $(seq 300); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench: $1 did not answer in 30s" >&2
	return 1
}

# busy_ticks: the machine's busy CPU time so far, in 1/100 s (user nice
# system irq softirq steal, all CPUs).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# quiet: wait, at most QUIET_WAIT seconds, for a second in which the machine
# is busy less than half a core (our own servers idle use a few percent).
quiet() {
	local a b waited=0
	while ((waited < QUIET_WAIT)); do
		a=$(busy_ticks)
		sleep 1
		b=$(busy_ticks)
		if ((b - a < 50)); then return 0; fi
		if ((waited == 0)); then log "machine busy ($((b - a))% of a core); waiting up to ${QUIET_WAIT}s"; fi
		waited=$((waited + 1))
	done
	log "machine still busy after ${QUIET_WAIT}s; measuring anyway (see machine busy in the table)"
}
