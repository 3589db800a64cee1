package main

import (
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSources(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	tests := []struct {
		in      string
		want    []netip.Addr
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "127.0.0.2", want: addrs("127.0.0.2")},
		{in: "127.0.0.2-127.0.0.4", want: addrs("127.0.0.2", "127.0.0.3", "127.0.0.4")},
		{in: "127.0.0.255-127.0.1.0", want: addrs("127.0.0.255", "127.0.1.0")},
		{in: " 127.0.0.2 , 127.0.0.9-127.0.0.10 ", want: addrs("127.0.0.2", "127.0.0.9", "127.0.0.10")},
		{in: "::1", want: addrs("::1")},
		{in: "127.0.0.5-127.0.0.4", wantErr: true},
		{in: "127.0.0.1-::1", wantErr: true},
		{in: "127.0.0", wantErr: true},
		{in: "127.0.0.1-", wantErr: true},
		{in: "10.0.0.0-10.255.255.255", wantErr: true}, // more than maxSources
	}
	for _, tc := range tests {
		got, err := parseSources(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseSources(%q) error = %v; want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("parseSources(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

func TestConnStreams(t *testing.T) {
	streams := []string{"a", "b", "c"}
	tests := []struct {
		k, g int
		want []string
	}{
		{1, 0, []string{"a"}},
		{1, 4, []string{"b"}},
		{2, 0, []string{"a", "b"}},
		{2, 1, []string{"c", "a"}},
		{3, 7, []string{"a", "b", "c"}},
	}
	for _, tc := range tests {
		if got := connStreams(streams, tc.k, tc.g); !slices.Equal(got, tc.want) {
			t.Errorf("connStreams(%v, %d, %d) = %v; want %v", streams, tc.k, tc.g, got, tc.want)
		}
	}
	// Subscribers are spread evenly.
	count := map[string]int{}
	for g := range 300 {
		for _, s := range connStreams(streams, 2, g) {
			count[s]++
		}
	}
	for _, s := range streams {
		if count[s] != 200 {
			t.Errorf("stream %s has %d subscribers of 600; want 200", s, count[s])
		}
	}
}

func TestParseEventTime(t *testing.T) {
	tests := []struct {
		in     string
		want   int64
		wantOK bool
	}{
		{`{"e":"trade","E":1700000000123,"s":"BTCUSDT"}`, 1700000000123000, true},
		{`{"e":"trade","E":1700000000123456,"s":"BTCUSDT"}`, 1700000000123456, true},
		{`{"E":1700000000123456789}`, 1700000000123456, true},
		{`{"E": 1700000000123}`, 1700000000123000, true},
		{`{"e":"depthUpdate","E":1700000000123,"T":1700000000999}`, 1700000000123000, true},
		{`{"u":1,"s":"BTCUSDT","b":"1.0"}`, 0, false}, // bookTicker: no E
		{`{"E":"x"}`, 0, false},
		{`{"E":`, 0, false},
	}
	for _, tc := range tests {
		got, ok := parseEventTime([]byte(tc.in))
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("parseEventTime(%s) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestScanMessage(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want message
	}{
		{"data", `{"stream":"binance:btcusdt@trade","seq":42,"data":{"e":"trade","E":1700000000001,"t":7}}`,
			message{kind: kindData, stream: []byte("binance:btcusdt@trade"), seq: 42, hasSeq: true, eventMicros: 1700000000001000, hasE: true}},
		{"gap", `{"stream":"binance:btcusdt@trade","seq":1,"gap":true,"data":{"E":1700000000001}}`,
			message{kind: kindData, stream: []byte("binance:btcusdt@trade"), seq: 1, hasSeq: true, gap: true, eventMicros: 1700000000001000, hasE: true}},
		{"no E", `{"stream":"binance:btcusdt@bookTicker","seq":3,"data":{"u":1,"s":"BTCUSDT"}}`,
			message{kind: kindData, stream: []byte("binance:btcusdt@bookTicker"), seq: 3, hasSeq: true}},
		{"result", `{"id":1,"result":{"streams":["binance:btcusdt@trade"]}}`,
			message{kind: kindReply, id: []byte("1")}},
		{"error", `{"id":12,"error":{"code":"invalid_stream","msg":"x","streams":["a"]}}`,
			message{kind: kindReply, id: []byte("12"), isError: true}},
		{"null id", `{"id":null,"error":{"code":"bad_request","msg":"x"}}`,
			message{kind: kindReply, id: []byte("null"), isError: true}},
		{"stream error", `{"stream":"binance:btcusdt@trade","error":{"code":"upstream_error","msg":"x"}}`,
			message{kind: kindStreamError, stream: []byte("binance:btcusdt@trade")}},
		{"other", `[]`, message{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := scanMessage([]byte(tc.in))
			if got.kind != tc.want.kind || string(got.stream) != string(tc.want.stream) || got.seq != tc.want.seq ||
				got.hasSeq != tc.want.hasSeq || got.gap != tc.want.gap || got.eventMicros != tc.want.eventMicros ||
				got.hasE != tc.want.hasE || string(got.id) != string(tc.want.id) || got.isError != tc.want.isError {
				t.Errorf("scanMessage(%s) = %+v; want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseProc(t *testing.T) {
	status := "Name:\tmarketgate\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n"
	rss, threads, err := parseStatus([]byte(status))
	if err != nil || rss != 20480*1024 || threads != 9 {
		t.Errorf("parseStatus = %d, %d, %v; want %d, 9, nil", rss, threads, err, 20480*1024)
	}
	if _, _, err := parseStatus([]byte("Name:\tx\n")); err == nil {
		t.Error("parseStatus without VmRSS = nil error; want one")
	}
	// The command name may hold spaces and parentheses.
	stat := "42 (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 200"
	ppid, cpu, sys, err := parseStat([]byte(stat))
	if err != nil || ppid != 1 || cpu != 3.0 || sys != 0.5 {
		t.Errorf("parseStat = %d, %v, %v, %v; want 1, 3, 0.5, nil", ppid, cpu, sys, err)
	}
	if _, _, _, err := parseStat([]byte("42 (x) S 1")); err == nil {
		t.Error("parseStat of a short line = nil error; want one")
	}
	self, err := readProc(0)
	if err != nil || self.RSS <= 0 || self.Threads <= 0 {
		t.Errorf("readProc(self) = %+v, %v", self, err)
	}
}

func TestParseHostCPU(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"cpu  100 5 50 1000 20 3 2 0 40 0\ncpu0 1 2 3 4 5\n", 1.6, false},
		{"cpu 1 2 3 4\n", 0, true},
		{"cpu0 1 2 3 4 5 6 7 8\n", 0, true},
		{"cpu 1 2 x 4 5\n", 0, true},
	}
	for _, tc := range tests {
		got, err := parseHostCPU([]byte(tc.in))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("parseHostCPU(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseGoroutines(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"123\n", 123, false},
		{"# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 57\ngo_threads 9\n", 57, false},
		{"go_threads 9\n", 0, true},
		{"", 0, true},
	}
	for _, tc := range tests {
		got, err := parseGoroutines([]byte(tc.in))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("parseGoroutines(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseConfig(t *testing.T) {
	env := map[string]string{"WSBENCH_CONNS": "50", "WSBENCH_STREAMS": "a,b,c", "WSBENCH_PER_CONN": "2"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := parseConfig([]string{"--per-conn", "3", "--sources", "127.0.0.2-127.0.0.3"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.conns != 50 || cfg.perConn != 3 || len(cfg.streams) != 3 || len(cfg.sources) != 2 || cfg.child != -1 {
		t.Errorf("parseConfig = %+v; want conns 50 (env), per-conn 3 (flag wins), 3 streams, 2 sources", cfg)
	}
	if got := cfg.timeBound(); got < cfg.duration+time.Minute {
		t.Errorf("timeBound() = %v; want more than the duration", got)
	}
	for _, args := range [][]string{
		{"--per-conn", "4"},
		{"--url", "http://x/ws"},
		{"--rate", "0"},
		{"--procs", "0"},
		{"--sources", "127.0.0.9-127.0.0.1"},
		{"--conns", "1000000", "--procs", "1"}, // more descriptors than the limit
		{"extra"},
	} {
		if _, err := parseConfig(args, lookup, io.Discard); err == nil {
			t.Errorf("parseConfig(%q) = nil error; want one", strings.Join(args, " "))
		}
	}
}
