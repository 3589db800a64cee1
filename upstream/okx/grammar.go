package okx

import (
	"strings"

	"github.com/marketgate/marketgate/upstream"
)

// Kind is the type of an OKX public channel. The zero Kind is invalid; no
// parser returns it.
type Kind uint8

// The channels.
const (
	KindInvalid Kind = iota
	KindTrades       // trades: taker orders, aggregated fills
	KindTickers      // tickers: last price, best bid/ask, 24 h statistics
	KindBooks5       // books5: the top 5 levels, whole, every 100 ms
	KindBooks        // books: 400 levels, a snapshot then updates (seqId/prevSeqId)
	KindBBO          // bbo-tbt: the best bid and ask, every 10 ms
	KindCandle       // candle<bar>: candles, on /ws/v5/business
)

var kindNames = [...]string{
	KindInvalid: "invalid",
	KindTrades:  "trades",
	KindTickers: "tickers",
	KindBooks5:  "books5",
	KindBooks:   "books",
	KindBBO:     "bbo-tbt",
	KindCandle:  "candle",
}

// String returns the channel name (for candles, "candle"), for logs and
// metrics labels.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// Class returns the neutral class of k.
func (k Kind) Class() upstream.Class {
	switch k {
	case KindTrades:
		return upstream.ClassTrade
	case KindTickers:
		return upstream.ClassTicker
	case KindBooks5:
		return upstream.ClassBookSnapshot
	case KindBooks:
		return upstream.ClassBookDelta
	case KindBBO:
		return upstream.ClassBookTop
	case KindCandle:
		return upstream.ClassCandle
	}
	return 0
}

// channels are the channels without parameters, by name.
var channels = map[string]Kind{
	"trades":  KindTrades,
	"tickers": KindTickers,
	"books5":  KindBooks5,
	"books":   KindBooks,
	"bbo-tbt": KindBBO,
}

// Bars are the candle bars OKX offers: UTC+8 boundaries for 6H and
// longer, and the same with UTC boundaries ("…utc"). Case matters: "1m"
// is a minute, "1M" a month.
var Bars = []string{
	"1s", "1m", "3m", "5m", "15m", "30m", "1H", "2H", "4H",
	"6H", "12H", "1D", "2D", "3D", "5D", "1W", "1M", "3M",
	"6Hutc", "12Hutc", "1Dutc", "2Dutc", "3Dutc", "5Dutc", "1Wutc", "1Mutc", "3Mutc",
}

var bars = func() map[string]bool {
	m := make(map[string]bool, len(Bars))
	for _, b := range Bars {
		m[b] = true
	}
	return m
}()

// Stream is a parsed OKX stream name. Only [ParseStream] makes valid
// values.
type Stream struct {
	// Name is the stream name as given, e.g. "candle1m:BTC-USDT".
	Name string
	// Channel is the OKX channel, e.g. "candle1m" or "books".
	Channel string
	// InstID is the instrument, e.g. "BTC-USDT" or "BTC-USDT-SWAP".
	InstID string
	// Kind is the channel's type.
	Kind Kind
	// Bar is the candle bar ("1m", "1Dutc") of [KindCandle], else empty.
	Bar string
}

// Neutral returns the stream as the upstream core sees it. OKX trade ids
// increase but skip (a push aggregates fills and names the last), so
// trades are ordered as monotonic, not consecutive.
func (s Stream) Neutral() upstream.Stream {
	n := upstream.Stream{Name: s.Name, Symbol: s.InstID, Class: s.Kind.Class(), Kind: int(s.Kind) - 1}
	if s.Kind == KindTrades {
		n.IDs = upstream.OrderMonotonic
	}
	return n
}

// kindOf returns the OKX kind of a stream the dialect parsed.
func kindOf(s *upstream.Stream) Kind { return Kind(s.Kind + 1) }

// maxInstID bounds an instrument id; OKX's are like
// "BTC-USDT-SWAP" (13 bytes).
const maxInstID = 48

// ParseStream parses an OKX stream name:
//
//	<channel>:<instId>
//	channel: trades | tickers | books5 | books | bbo-tbt | candle<bar>
//	instId:  <BASE>-<QUOTE> (SPOT) | <BASE>-<QUOTE>-SWAP (perpetual swaps)
//
// BASE and QUOTE are upper-case letters and digits. Names are
// case-sensitive. It checks syntax only; whether the instrument trades is
// for [upstream.Feed.Validate]. The error is a [*upstream.ValidationError]
// wrapping [upstream.ErrInvalidStream].
func ParseStream(name string) (Stream, error) {
	ch, inst, ok := strings.Cut(name, ":")
	if !ok || !ValidInstID(inst) {
		return Stream{}, invalidStream(name)
	}
	s := Stream{Name: name, Channel: ch, InstID: inst}
	if k, ok := channels[ch]; ok {
		s.Kind = k
		return s, nil
	}
	bar, ok := strings.CutPrefix(ch, "candle")
	if !ok || !bars[bar] {
		return Stream{}, invalidStream(name)
	}
	s.Kind, s.Bar = KindCandle, bar
	return s, nil
}

// ValidInstID reports whether id can be the instId of a SPOT pair
// (BTC-USDT) or a perpetual SWAP (BTC-USDT-SWAP).
func ValidInstID(id string) bool {
	if len(id) == 0 || len(id) > maxInstID {
		return false
	}
	base, rest, ok := strings.Cut(id, "-")
	if !ok || !validCode(base) {
		return false
	}
	quote, kind, swap := strings.Cut(rest, "-")
	return validCode(quote) && (!swap || kind == "SWAP")
}

// validCode reports whether c is a currency code: upper-case ASCII letters
// and digits.
func validCode(c string) bool {
	if c == "" {
		return false
	}
	for i := 0; i < len(c); i++ {
		if b := c[i]; !(b >= 'A' && b <= 'Z' || b >= '0' && b <= '9') {
			return false
		}
	}
	return true
}

func invalidStream(name string) error {
	return &upstream.ValidationError{Err: upstream.ErrInvalidStream, Value: name}
}
