package downstream

import (
	"context"
	"log/slog"
	"time"

	"github.com/gobwas/ws"
)

// wheelSlots is the number of slots of the keepalive wheel. Each tick of
// PingInterval/wheelSlots checks one slot, so every connection is checked
// once per PingInterval, and a tick touches 1/wheelSlots of them: no timer
// per connection, and no scan of every connection at once.
const wheelSlots = 16

// wheel holds the connections by keepalive slot: it is the server's one
// set of connections, so a connection costs one map entry. Its slots are
// guarded by Server.mu.
type wheel [wheelSlots]map[uint64]*conn

func (w *wheel) add(c *conn) {
	i := c.id % wheelSlots
	if w[i] == nil {
		w[i] = make(map[uint64]*conn)
	}
	w[i][c.id] = c
}

// remove deletes c and reports whether it was there.
func (w *wheel) remove(c *conn) bool {
	slot := w[c.id%wheelSlots]
	if _, ok := slot[c.id]; !ok {
		return false
	}
	delete(slot, c.id)
	return true
}

// pingFrame is the server's keepalive ping; its payload is empty.
var pingFrame = compileFrame(ws.OpPing, nil)

// keepalive pings connections that have been silent for PingInterval and
// closes those still silent PongTimeout later: a browser that vanished
// without a FIN (a laptop lid, a dead NAT) is found and its resources freed.
// Anything the client sends counts as a sign of life, pongs included.
func (s *Server) keepalive(ctx context.Context) {
	tick := time.NewTicker(s.cfg.PingInterval / wheelSlots)
	defer tick.Stop()
	var batch []*conn
	for slot := 0; ; slot = (slot + 1) % wheelSlots {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		batch = batch[:0]
		for _, c := range s.conns[slot] {
			batch = append(batch, c)
		}
		s.mu.Unlock()
		now := time.Now().UnixNano()
		for _, c := range batch {
			s.checkAlive(c, now)
		}
		clear(batch)
	}
}

// checkAlive pings c or closes it, depending on how long it has been silent.
func (s *Server) checkAlive(c *conn, now int64) {
	if c.state.Load() != stateOpen {
		return
	}
	silent := time.Duration(now - c.lastRead.Load())
	switch {
	case silent >= s.cfg.PingInterval+s.cfg.PongTimeout:
		s.metrics.closed("keepalive_timeout")
		c.logAt(slog.LevelDebug, "no answer to keepalive", "silent", silent)
		c.finish() // the peer is gone: nobody would read a close frame
	case silent >= s.cfg.PingInterval:
		c.enqueueReply(pingFrame)
	}
}
