package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/sys/unix"
)

// Modes of the connections that do not sample (--others).
const (
	othersCount = "count" // read everything, count frames and bytes, parse nothing else
	othersMute  = "mute"  // read nothing after the subscribe reply
)

// samples reports whether connection g parses every message (latency,
// seq checks) rather than running as --others says. The sampled
// connections are whole groups of len(streams) consecutive connections,
// spread evenly over the connection order, so that they cover every
// stream and stand at every position of the server's subscriber lists,
// the last ones included.
func (c config) samples(g int) bool {
	if c.sampleConns <= 0 || c.idle {
		return true
	}
	ns := max(1, len(c.streams))
	groups := (c.conns + ns - 1) / ns
	want := (c.sampleConns + ns - 1) / ns // groups to sample
	stride := max(1, groups/want)
	q := g / ns
	return q%stride == stride-1 && q/stride < want
}

// errSwitch ends read once the subscribe reply came, for a connection
// that does not sample.
var errSwitch = errors.New("subscribed; switching to the cheap reader")

// frameCounter follows the WebSocket frames of a byte stream without
// buffering them: it counts data frames and their payload bytes, and
// keeps only the payload of control frames (at most 125 bytes).
type frameCounter struct {
	hdr  [14]byte
	hn   int // header bytes held
	need int // header length once known (after 2 bytes), else 0
	rem  int64
	op   ws.OpCode
	ctl  []byte // the control frame's payload so far
	// msgs and bytes count data frames that end a message and all data
	// payload bytes.
	msgs, bytes int64
}

// scan consumes b and calls control for each complete control frame. It
// returns control's error, or one for a frame no server sends.
func (f *frameCounter) scan(b []byte, control func(op ws.OpCode, payload []byte) error) error {
	for len(b) > 0 {
		if f.rem > 0 {
			k := int(min(f.rem, int64(len(b))))
			if f.op.IsControl() {
				f.ctl = append(f.ctl, b[:k]...)
			} else {
				f.bytes += int64(k)
			}
			f.rem -= int64(k)
			b = b[k:]
			if f.rem == 0 && f.op.IsControl() {
				if err := control(f.op, f.ctl); err != nil {
					return err
				}
			}
			continue
		}
		f.hdr[f.hn] = b[0]
		f.hn++
		b = b[1:]
		if f.hn == 2 {
			if f.hdr[1]&0x80 != 0 {
				return errors.New("masked frame from server")
			}
			switch f.hdr[1] & 0x7f {
			case 126:
				f.need = 4
			case 127:
				f.need = 10
			default:
				f.need = 2
			}
		}
		if f.hn < 2 || f.hn < f.need {
			continue
		}
		var n int64
		switch f.need {
		case 4:
			n = int64(binary.BigEndian.Uint16(f.hdr[2:4]))
		case 10:
			n = int64(binary.BigEndian.Uint64(f.hdr[2:10]))
		default:
			n = int64(f.hdr[1] & 0x7f)
		}
		f.op = ws.OpCode(f.hdr[0] & 0x0f)
		fin := f.hdr[0]&0x80 != 0
		f.hn, f.need, f.rem = 0, 0, n
		if f.op.IsControl() {
			if n > 125 {
				return errors.New("control frame longer than 125 bytes")
			}
			f.ctl = f.ctl[:0]
			if n == 0 {
				if err := control(f.op, nil); err != nil {
					return err
				}
			}
		} else if fin {
			f.msgs++
		}
	}
	return nil
}

// count reads the connection until it ends, counting its frames (see
// frameCounter) into the shard; it answers pings and a close.
func (c *clientConn) count(ctx context.Context) error {
	var f frameCounter
	control := func(op ws.OpCode, p []byte) error {
		switch op {
		case ws.OpPing:
			_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			err := wsutil.WriteClientMessage(c.nc, ws.OpPong, p)
			_ = c.nc.SetWriteDeadline(time.Time{})
			return err
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(p)
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			_ = wsutil.WriteClientMessage(c.nc, ws.OpClose, ws.NewCloseFrameBody(code, ""))
			return CloseError{code, reason}
		}
		return nil
	}
	for {
		if _, err := c.br.Peek(1); err != nil {
			return err
		}
		b, _ := c.br.Peek(c.br.Buffered())
		m, n := f.msgs, f.bytes
		err := f.scan(b, control)
		_, _ = c.br.Discard(len(b))
		if d := f.msgs - m; d > 0 {
			c.sh.msgs.Add(d)
		}
		if d := f.bytes - n; d > 0 {
			c.sh.bytes.Add(d)
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// mute holds the connection open without reading until ctx ends: the
// server's write queue for it grows until its slow-consumer policy or
// write timeout ends it.
func (c *clientConn) mute(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// bottlenecks returns what suggests that the load generator, not the
// server, limited the run: its own CPU near all of the cores it may use,
// the sampled clients' latency growing across the window (firstP50 and
// lastP50: the p50 of its first and last second, ms; -1 unknown), or the
// clients reading far later than the server says it wrote.
func bottlenecks(r Report, cfg config, firstP50, lastP50 float64) []string {
	var out []string
	cores := float64(cfg.ncpus)
	if cores == 0 {
		var set unix.CPUSet
		if unix.SchedGetaffinity(0, &set) == nil {
			cores = float64(set.Count())
		}
	}
	if r.Window > 0 && cores > 0 {
		if u := r.ClientCPU / r.Window; u >= 0.9*cores {
			out = append(out, fmt.Sprintf("the load generator used %.2f of its %.0f cores: it was likely the bottleneck (pin it apart with --cpus, use --sample-conns and --others count)", u, cores))
		}
	}
	if firstP50 >= 0 && lastP50 > 2*firstP50 && lastP50 > 20 {
		out = append(out, fmt.Sprintf("the sampled clients' p50 latency grew from %.1f ms to %.1f ms across the window: someone fell behind (the server's fan-out figures say whether it was the server)", firstP50, lastP50))
	}
	if f := r.FanOut; f != nil && f.Events > 0 && r.Latency.Samples > 0 && r.Latency.P50 > f.P99MS+10 {
		out = append(out, fmt.Sprintf("the clients' p50 latency (%.1f ms) is well above the server's fan-out p99 (%.1f ms): the clients read late (the load generator, or the exchange's own delay)", r.Latency.P50, f.P99MS))
	}
	return out
}
