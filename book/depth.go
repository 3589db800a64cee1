package book

import (
	"strconv"

	"context"
	"encoding/json"
	"errors"
	"golang.org/x/sync/singleflight"
	"log/slog"
	"sync"
	"time"

	"github.com/marketgate/marketgate/hub"
)

// Depths answers REST depth requests from the books the gateway keeps
// (the "<symbol>@book" streams), on any node: it reads a book's state
// and the updates after it from the hub's history, so the answer's
// lastUpdateId is consistent with the diff stream the gateway relays. A
// request for a book nobody keeps yet asks for it (as a subscriber would)
// and keeps it wanted for Config.Interest after the last request.
type Depths struct {
	cfg DepthConfig
	log *slog.Logger

	mu       sync.Mutex
	interest map[string]time.Time // book stream key -> last request
	// sf makes the requests for one book and depth that arrive together
	// share one read (and one wait for a book not kept yet).
	sf singleflight.Group
}

// DepthConfig configures [Depths].
type DepthConfig struct {
	// Hub holds the books' states; it must keep history ([hub.History]).
	Hub hub.Hub
	// Source validates and carries the book streams (as for browsers).
	Source interface {
		Validate(key string) error
		Want(keys []string)
		Unwant(keys []string)
	}
	// Procedures are the exchanges whose books are kept, by name.
	Procedures map[string]Procedure
	// Interest is how long a book asked for by REST stays wanted after
	// the last request. Default 1m.
	Interest time.Duration
	// Wait bounds how long a request waits for a book that is not kept
	// yet. Default 3s.
	Wait time.Duration
	// MaxAge is how old a book's state may be (its keeper refreshes it
	// every 10s): an older one belongs to a keeper that is gone. Default
	// 30s.
	MaxAge time.Duration
	// MaxInterests bounds the books kept wanted by REST. Default 200.
	MaxInterests int
	// Logger receives the logs; nil discards them.
	Logger *slog.Logger
}

// NewDepths returns Depths for cfg.
func NewDepths(cfg DepthConfig) (*Depths, error) {
	if _, ok := cfg.Hub.(hub.History); !ok || cfg.Source == nil {
		return nil, errors.New("book: depths: a Hub with history and a Source are required")
	}
	if cfg.Interest == 0 {
		cfg.Interest = time.Minute
	}
	if cfg.Wait == 0 {
		cfg.Wait = 3 * time.Second
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 3 * stateRefresh
	}
	if cfg.MaxInterests == 0 {
		cfg.MaxInterests = 200
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Depths{cfg: cfg, log: cfg.Logger.With("component", "book-depth"), interest: make(map[string]time.Time)}, nil
}

// nopReceiver holds a hub subscription open so that history reads know
// this node receives the stream.
type nopReceiver struct{}

func (nopReceiver) Receive(hub.Message) {}
func (nopReceiver) Flush()              {}

// Depth returns the kept book of symbol (the exchange's spelling) as
// the exchange's REST depth answer with at most limit levels a side (at
// most the depth kept); ok is false when no fresh book can be had within
// Config.Wait.
func (d *Depths) Depth(ctx context.Context, exchange, symbol string, limit int) ([]byte, bool, error) {
	p := d.cfg.Procedures[exchange]
	if p == nil || symbol == "" || limit <= 0 {
		return nil, false, nil
	}
	key := exchange + ":" + p.BookName(symbol)
	if err := d.cfg.Source.Validate(key); err != nil {
		return nil, false, nil // the exchange answers what is wrong
	}
	if !d.want(ctx, key) {
		return nil, false, nil
	}
	// Shared by the requests asking meanwhile, so not bound to the first
	// one's context: Wait bounds it.
	v, _, _ := d.sf.Do(key+"|"+strconv.Itoa(limit), func() (any, error) {
		return d.read(context.WithoutCancel(ctx), p, key, limit), nil
	})
	body, _ := v.([]byte)
	return body, body != nil, nil
}

// read reads the book of stream key within Config.Wait and returns its
// depth answer, or nil.
func (d *Depths) read(ctx context.Context, p Procedure, key string, limit int) []byte {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Wait)
	defer cancel()
	h := d.cfg.Hub.(hub.History)
	for {
		rec, err := h.Recover(ctx, key, nil)
		if err == nil && rec.State != nil {
			if body, ok := d.build(p, rec, limit); ok {
				return body
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// want marks key as wanted by REST now; it reports false when
// MaxInterests books are wanted already.
func (d *Depths) want(ctx context.Context, key string) bool {
	d.mu.Lock()
	_, known := d.interest[key]
	if !known && len(d.interest) >= d.cfg.MaxInterests {
		d.mu.Unlock()
		return false
	}
	d.interest[key] = time.Now()
	d.mu.Unlock()
	if known {
		return true
	}
	if err := d.cfg.Hub.Subscribe(ctx, key, nopReceiver{}); err != nil {
		d.log.Debug("depth: subscribe", "stream", key, "err", err)
	}
	d.cfg.Source.Want([]string{key})
	return true
}

// wireBook is a book message as the keeper publishes it.
type wireBook struct {
	Type         string      `json:"type"`
	LastUpdateID int64       `json:"lastUpdateId"`
	First        int64       `json:"U"` // its own field: keys match without regard to case
	U            int64       `json:"u"`
	Bids         [][2]string `json:"bids"`
	Asks         [][2]string `json:"asks"`
	B            [][2]string `json:"b"`
	A            [][2]string `json:"a"`
}

// build makes the depth answer from a state and the messages after it.
func (d *Depths) build(p Procedure, rec Recovery, limit int) ([]byte, bool) {
	st := rec.State
	if age := time.Since(time.UnixMicro(st.EventTime)); st.EventTime == 0 || age > d.cfg.MaxAge {
		return nil, false
	}
	bk := NewBook(0)
	var m wireBook
	if err := json.Unmarshal(st.Data, &m); err != nil || m.Type != "snapshot" {
		return nil, false
	}
	set := func(bids, asks [][2]string) {
		for _, l := range bids {
			bk.Set(true, l[0], l[1])
		}
		for _, l := range asks {
			bk.Set(false, l[0], l[1])
		}
	}
	set(m.Bids, m.Asks)
	bk.LastUpdateID = m.LastUpdateID
	timeMs := st.EventTime / 1000
	for _, msg := range rec.Messages {
		m = wireBook{}
		if err := json.Unmarshal(msg.Data, &m); err != nil {
			return nil, false
		}
		switch m.Type {
		case "snapshot":
			bk.Reset()
			set(m.Bids, m.Asks)
			bk.LastUpdateID = m.LastUpdateID
		case "update":
			set(m.B, m.A)
			bk.LastUpdateID = m.U
		default: // stale
			return nil, false
		}
		if msg.EventTime > 0 {
			timeMs = msg.EventTime / 1000
		}
	}
	return p.AppendDepth(nil, bk.LastUpdateID, bk.Bids.Top(limit), bk.Asks.Top(limit), timeMs), true
}

// Recovery is hub.Recovery, named here for build's signature.
type Recovery = hub.Recovery

// Run forgets the books no REST request asked for within Interest,
// until ctx ends.
func (d *Depths) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.Interest / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			var gone []string
			d.mu.Lock()
			for k, at := range d.interest {
				if now.Sub(at) > d.cfg.Interest {
					delete(d.interest, k)
					gone = append(gone, k)
				}
			}
			d.mu.Unlock()
			for _, k := range gone {
				d.cfg.Source.Unwant([]string{k})
				if err := d.cfg.Hub.Unsubscribe(ctx, k, nopReceiver{}); err != nil {
					d.log.Debug("depth: unsubscribe", "stream", k, "err", err)
				}
			}
		}
	}
}
