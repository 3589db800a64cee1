#!/usr/bin/env bash
# The project's test command (the README's second command): installs what the
# tests need when it is missing, then vets and runs every test with the race
# detector. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
	echo "test: Go is not installed; install Go 1.26 or newer (https://go.dev/dl/)" >&2
	exit 1
fi

# need PACKAGE COMMAND...: the Debian package providing the commands, installed
# when one is missing (as root), else a clear error.
need() {
	local pkg=$1 missing=()
	shift
	for cmd in "$@"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
	((${#missing[@]} == 0)) && return 0
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "test: ${missing[*]} missing; install the $pkg package (e.g. sudo apt-get install -y $pkg) and run again" >&2
		exit 1
	fi
	echo "test: installing $pkg for ${missing[*]}" >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
}
# The Redis hub's tests start their own redis-server (and cluster) on free ports.
need redis-server redis-server redis-cli
# The load balancer configs in deploy/ are checked (and nginx run) by their tests.
need nginx nginx
need haproxy haproxy
# The browser tests drive headless Chromium (chromedp).
need chromium chromium
# The JS client's package test (web/client_test.go) runs its unit tests
# under Node, npm pack and tsc (TypeScript from the npm registry, cached).
need nodejs node
need npm npm
# promtool checks deploy/prometheus (rules, scrape config) and the Grafana
# dashboard's queries. It comes from Debian's prometheus package, unpacked
# into a cache folder rather than installed, so that no Prometheus service
# is set up or started; deploy's tests look there too.
if ! command -v promtool >/dev/null 2>&1; then
	tools=${XDG_CACHE_HOME:-$HOME/.cache}/marketgate/prometheus
	if [ ! -x "$tools/usr/bin/promtool" ]; then
		echo "test: unpacking promtool from Debian's prometheus package into $tools" >&2
		deb=$(mktemp -d)
		if ! (cd "$deb" && apt-get download prometheus >/dev/null 2>&1); then
			[ "$(id -u)" -eq 0 ] && apt-get update -qq
			(cd "$deb" && apt-get download prometheus >/dev/null) || {
				echo "test: promtool missing; install the prometheus package (e.g. sudo apt-get install -y prometheus) and run again" >&2
				exit 1
			}
		fi
		mkdir -p "$tools"
		dpkg-deb -x "$deb"/prometheus_*.deb "$tools"
		rm -rf "$deb"
	fi
	export PATH=$tools/usr/bin:$PATH
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "test: gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 -timeout 15m ./...

# A short fuzzing pass over every parser of untrusted input (each target
# also runs its seeds in the test run above).
# Go 1.26's fuzz coordinator can fail a run with a bare "context deadline
# exceeded" when -fuzztime ends while a worker is busy (golang/go#75804,
# fixed in Go 1.27): such a run found nothing, so it is run once more. A
# real finding writes its failing input and fails at once.
fuzz() {
	local out
	if out=$(go test -run XXX -fuzz "^$2\$" -fuzztime "${FUZZTIME:-8s}" "$1" 2>&1); then
		echo "$out"
		return 0
	fi
	echo "$out"
	if grep -q "context deadline exceeded" <<<"$out" && ! grep -q "Failing input written" <<<"$out"; then
		echo "test: $2 hit the fuzz deadline race (golang/go#75804) and found nothing; running it again" >&2
		go test -run XXX -fuzz "^$2\$" -fuzztime "${FUZZTIME:-8s}" "$1"
		return
	fi
	return 1
}
fuzz ./downstream FuzzReadFrames
fuzz ./downstream FuzzNativeCommand
fuzz ./downstream FuzzDialectCommand
fuzz ./upstream/binance FuzzParseStream
fuzz ./upstream/binance FuzzParseFuturesStream
fuzz ./upstream/binance FuzzParseInbound
fuzz ./upstream/okx FuzzParseStream
fuzz ./upstream/okx FuzzParse
fuzz ./upstream/bybit FuzzParseStream
fuzz ./upstream/bybit FuzzParse
fuzz ./internal/jsonscan FuzzField
fuzz ./hub FuzzDecode
fuzz ./book FuzzKeeperDiff
fuzz ./normalize FuzzNormalize
fuzz ./hub FuzzCheckData
fuzz ./auth FuzzVerify
fuzz ./auth FuzzMatch
fuzz ./cmd/marketgate FuzzParseConfigFile
