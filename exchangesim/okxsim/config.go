package okxsim

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a [Server]. A zero field takes the default in its
// comment. New copies it.
type Config struct {
	// Instruments are the listed instIds: SPOT (BTC-USDT) and SWAP
	// (BTC-USDT-SWAP). Default: BTC-USDT, ETH-USDT, SOL-USDT, XRP-USDT,
	// BTC-USDT-SWAP, ETH-USDT-SWAP.
	Instruments []string
	// TickInterval is the market tick: each tick may trade, moves the
	// books and pushes every channel. Default 100ms.
	TickInterval time.Duration
	// CandleInterval spaces the pushes of a live candle (OKX: at most one
	// a second); a candle is also pushed, confirmed, when its bar ends,
	// and the next one at once. Default 1s.
	CandleInterval time.Duration
	// MaxRequestsPerHour is the number of subscribe and unsubscribe
	// requests one connection may send in any rolling hour. Default 480.
	MaxRequestsPerHour int
	// MaxArgsBytes bounds the total length of one request's args.
	// Default 64 KiB.
	MaxArgsBytes int
	// MaxBookChannels is the number of book channels (books) one
	// connection may hold. Default 29 ("less than 30").
	MaxBookChannels int
	// IdleTimeout closes a connection that sent nothing for this long.
	// Default 30s.
	IdleTimeout time.Duration
	// MaxConnAttempts is the number of WebSocket handshakes one IP may
	// make in any ConnAttemptWindow; more are refused with HTTP 429.
	// Default 3 per second; -1: no limit.
	MaxConnAttempts   int
	ConnAttemptWindow time.Duration
	// NoticeGrace is the time between the notice 64008 and the close it
	// announces. Default 60s.
	NoticeGrace time.Duration
	// BookLevels is the depth of book snapshots per side. Default 400.
	BookLevels int
	// SendQueue is the number of frames queued per connection before it
	// is closed as a slow consumer. Default 4096.
	SendQueue int
	// Seed seeds the market; 0 picks one from the clock.
	Seed int64
	// Logger receives the simulator's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultInstruments are the instruments listed by default.
var DefaultInstruments = []string{"BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT", "BTC-USDT-SWAP", "ETH-USDT-SWAP"}

func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Instruments) == 0 {
		cfg.Instruments = DefaultInstruments
	}
	cfg.Instruments = append([]string(nil), cfg.Instruments...)
	for _, in := range cfg.Instruments {
		if instType(in) == "" {
			return cfg, fmt.Errorf("okxsim: instrument %q: want BASE-QUOTE or BASE-QUOTE-SWAP", in)
		}
	}
	durs := []struct {
		p   *time.Duration
		def time.Duration
	}{
		{&cfg.TickInterval, 100 * time.Millisecond},
		{&cfg.CandleInterval, time.Second},
		{&cfg.IdleTimeout, 30 * time.Second},
		{&cfg.ConnAttemptWindow, time.Second},
		{&cfg.NoticeGrace, 60 * time.Second},
	}
	for _, d := range durs {
		if *d.p < 0 {
			return cfg, errors.New("okxsim: negative duration")
		}
		if *d.p == 0 {
			*d.p = d.def
		}
	}
	ints := []struct {
		p   *int
		def int
	}{
		{&cfg.MaxRequestsPerHour, 480},
		{&cfg.MaxArgsBytes, 64 << 10},
		{&cfg.MaxBookChannels, 29},
		{&cfg.MaxConnAttempts, 3},
		{&cfg.BookLevels, 400},
		{&cfg.SendQueue, 4096},
	}
	for _, n := range ints {
		if *n.p == 0 {
			*n.p = n.def
		}
		if *n.p < -1 {
			return cfg, errors.New("okxsim: negative limit")
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	return cfg, nil
}
