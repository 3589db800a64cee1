package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// maxSources bounds a --sources list, so that a typo such as 127.0.0.2-127.9.0.1
// cannot make a list of millions of addresses.
const maxSources = 1 << 16

// parseSources parses a comma-separated list of addresses and inclusive
// ranges of one family, "127.0.0.2-127.0.0.50,127.0.1.1". An empty string
// is an empty list: the system picks the source address.
func parseSources(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		first, last, isRange := strings.Cut(item, "-")
		lo, err := netip.ParseAddr(strings.TrimSpace(first))
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", item, err)
		}
		hi := lo
		if isRange {
			if hi, err = netip.ParseAddr(strings.TrimSpace(last)); err != nil {
				return nil, fmt.Errorf("source %q: %w", item, err)
			}
		}
		if lo.Is4() != hi.Is4() || hi.Less(lo) {
			return nil, fmt.Errorf("source %q: not an ascending range of one family", item)
		}
		for a := lo; ; a = a.Next() {
			if len(out) == maxSources {
				return nil, fmt.Errorf("source %q: more than %d addresses", item, maxSources)
			}
			out = append(out, a)
			if a == hi {
				break
			}
		}
	}
	return out, nil
}

// parseStreams splits a comma-separated list of stream keys.
func parseStreams(s string) []string {
	var out []string
	for k := range strings.SplitSeq(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// connStreams returns the k streams connection g subscribes: the next k of
// the list after those of connection g-1, round robin, so every stream gets
// the same number of subscribers (±1) and one connection never holds the
// same stream twice (k <= len(streams)).
func connStreams(streams []string, k, g int) []string {
	out := make([]string, k)
	for j := range k {
		out[j] = streams[(g*k+j)%len(streams)]
	}
	return out
}

// parseEventTime finds the first "E": field in an exchange event and returns
// its time in Unix microseconds. Binance sends milliseconds (13 digits) or,
// with timeUnit=MICROSECOND, microseconds (16 digits); 19 digits are read as
// nanoseconds.
func parseEventTime(b []byte) (int64, bool) {
	i := bytes.Index(b, []byte(`"E":`))
	if i < 0 {
		return 0, false
	}
	v, digits := parseUint(b[i+4:])
	switch {
	case digits == 0:
		return 0, false
	case digits >= 19:
		return int64(v / 1000), true
	case digits >= 16:
		return int64(v), true
	default:
		return int64(v) * 1000, true
	}
}

// parseUint reads a decimal number after optional spaces; digits is 0 when
// there is none. It stops before overflowing.
func parseUint(b []byte) (v uint64, digits int) {
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && digits < 19; i++ {
		v = v*10 + uint64(b[i]-'0')
		digits++
	}
	return v, digits
}

// Kinds of native-protocol server messages.
const (
	kindOther       = iota // not recognised
	kindData               // {"stream":…,"seq":…,"data":…}
	kindReply              // {"id":…,"result":…} or {"id":…,"error":…}
	kindStreamError        // {"stream":…,"error":…}: the stream ended upstream
)

// message is what scanMessage found in one server message. Its slices
// point into the scanned bytes.
type message struct {
	kind   int
	stream []byte
	seq    uint64
	hasSeq bool
	gap    bool
	// eventMicros is the event's "E" time, when hasE.
	eventMicros int64
	hasE        bool
	// id is the reply's id as sent (a JSON number or string), isError
	// whether it is an error reply.
	id      []byte
	isError bool
}

// scanMessage classifies a native-protocol message without decoding it,
// the way a fast client would: the envelope fields come before "data", and
// the exchange event inside data is searched for "E" only.
func scanMessage(p []byte) message {
	var m message
	if di := bytes.Index(p, []byte(`"data":`)); di >= 0 {
		head := p[:di]
		m.kind = kindData
		m.stream = stringField(head, `"stream":"`)
		if i := bytes.Index(head, []byte(`"seq":`)); i >= 0 {
			var d int
			m.seq, d = parseUint(head[i+6:])
			m.hasSeq = d > 0
		}
		m.gap = bytes.Contains(head, []byte(`"gap":true`))
		m.eventMicros, m.hasE = parseEventTime(p[di+7:])
		return m
	}
	if s := stringField(p, `"stream":"`); s != nil {
		m.kind, m.stream = kindStreamError, s
		return m
	}
	if i := bytes.Index(p, []byte(`"id":`)); i >= 0 {
		m.kind = kindReply
		rest := p[i+5:]
		end := bytes.IndexAny(rest, ",}")
		if end < 0 {
			end = len(rest)
		}
		m.id = bytes.TrimSpace(rest[:end])
		m.isError = bytes.Contains(p, []byte(`"error":`))
	}
	return m
}

// stringField returns the JSON string value after key (which ends with the
// opening quote), without unescaping; nil when absent.
func stringField(b []byte, key string) []byte {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil
	}
	v := b[i+len(key):]
	if end := bytes.IndexByte(v, '"'); end >= 0 {
		return v[:end]
	}
	return nil
}

// procSample is what /proc tells about a process.
type procSample struct {
	RSS     int64   // resident set, bytes (VmRSS)
	Threads int     // OS threads
	CPU     float64 // user + system CPU, seconds
	Sys     float64 // system CPU alone, seconds
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// parseStatus reads VmRSS and Threads from /proc/<pid>/status.
func parseStatus(b []byte) (rss int64, threads int, err error) {
	var haveRSS, haveThreads bool
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		fields := strings.Fields(string(v))
		switch string(k) {
		case "VmRSS":
			if len(fields) != 2 || fields[1] != "kB" {
				return 0, 0, fmt.Errorf("VmRSS %q", bytes.TrimSpace(v))
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("VmRSS: %w", err)
			}
			rss, haveRSS = kb*1024, true
		case "Threads":
			if len(fields) != 1 {
				return 0, 0, fmt.Errorf("Threads %q", bytes.TrimSpace(v))
			}
			if threads, err = strconv.Atoi(fields[0]); err != nil {
				return 0, 0, fmt.Errorf("Threads: %w", err)
			}
			haveThreads = true
		}
	}
	if !haveRSS || !haveThreads {
		return 0, 0, errors.New("status: no VmRSS or Threads")
	}
	return rss, threads, nil
}

// parseStat reads the parent pid, utime + stime and stime alone (in
// seconds) from /proc/<pid>/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (ppid int, cpu, sys float64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, errors.New("stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid); utime is field 14,
	// stime field 15.
	if len(f) < 13 {
		return 0, 0, 0, fmt.Errorf("stat: %d fields", len(f)+2)
	}
	ppid, err0 := strconv.Atoi(f[1])
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err0, err1, err2); err != nil {
		return 0, 0, 0, fmt.Errorf("stat: %w", err)
	}
	return ppid, float64(ut+st) / clockTicks, float64(st) / clockTicks, nil
}

// parseHostCPU reads the machine's busy CPU time (everything but idle and
// iowait, summed over CPUs) from the first line of /proc/stat, in seconds.
func parseHostCPU(b []byte) (float64, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q", line)
	}
	var busy uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		// idle and iowait are the 4th and 5th numbers; guest time is
		// already counted in user (8th on), so stop at steal.
		if i != 3 && i != 4 && i < 8 {
			busy += n
		}
	}
	return float64(busy) / clockTicks, nil
}

// parseGoroutines reads a goroutine count from a body that is either just
// the number or Prometheus text with a go_goroutines sample.
func parseGoroutines(b []byte) (int, error) {
	s := strings.TrimSpace(string(b))
	if n, err := strconv.Atoi(s); err == nil {
		return n, nil
	}
	for line := range strings.Lines(s) {
		if rest, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return 0, fmt.Errorf("go_goroutines: %w", err)
			}
			return int(f), nil
		}
	}
	return 0, errors.New("no number and no go_goroutines sample")
}
