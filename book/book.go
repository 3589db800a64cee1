package book

import (
	"slices"
	"strconv"
)

// Level is one price level as the exchange spells it: price P and
// quantity Q, with the price's value in Px for ordering.
type Level struct {
	Px   float64
	P, Q string
}

// Side is one side of a book: its levels best first (bids highest first,
// asks lowest first).
type Side struct {
	bids   bool
	levels []Level
}

// Book is an order book: its two sides and the update id it is at. It is
// not safe for concurrent use.
type Book struct {
	Bids, Asks Side
	// LastUpdateID is the exchange's id of the last change applied.
	LastUpdateID int64
	// max bounds each side's levels; the worst are dropped past it.
	max int
}

// NewBook returns an empty book that keeps at most maxLevels levels a side
// (0: no bound).
func NewBook(maxLevels int) *Book {
	return &Book{Bids: Side{bids: true}, max: maxLevels}
}

// better reports whether price a comes before price b on the side.
func (s *Side) better(a, b float64) bool {
	if s.bids {
		return a > b
	}
	return a < b
}

// find returns where px is or would be on the side.
func (s *Side) find(px float64) (int, bool) {
	return slices.BinarySearchFunc(s.levels, px, func(l Level, px float64) int {
		switch {
		case l.Px == px:
			return 0
		case s.better(l.Px, px):
			return -1
		}
		return 1
	})
}

// Set sets the level at price p to quantity q; a quantity of zero (in
// any spelling, "0.00000000" included) deletes it. A price or quantity
// that is not a number is refused.
func (s *Side) Set(p, q string, max int) bool {
	px, err := strconv.ParseFloat(p, 64)
	if err != nil {
		return false
	}
	qty, err := strconv.ParseFloat(q, 64)
	if err != nil || qty < 0 {
		return false
	}
	i, found := s.find(px)
	switch {
	case qty == 0 && found:
		s.levels = slices.Delete(s.levels, i, i+1)
	case qty == 0:
	case found:
		s.levels[i].P, s.levels[i].Q = p, q
	default:
		s.levels = slices.Insert(s.levels, i, Level{Px: px, P: p, Q: q})
		if max > 0 && len(s.levels) > max {
			s.levels = s.levels[:max]
		}
	}
	return true
}

// Top returns the side's best n levels (all when n <= 0). The slice is
// the side's own: valid until the side changes.
func (s *Side) Top(n int) []Level {
	if n <= 0 || n > len(s.levels) {
		return s.levels
	}
	return s.levels[:n]
}

// Len returns the number of levels on the side.
func (s *Side) Len() int { return len(s.levels) }

// Reset empties the side.
func (s *Side) Reset() { s.levels = s.levels[:0] }

// Set sets a level of the bid (bid true) or ask side.
func (b *Book) Set(bid bool, p, q string) bool {
	if bid {
		return b.Bids.Set(p, q, b.max)
	}
	return b.Asks.Set(p, q, b.max)
}

// Reset empties the book.
func (b *Book) Reset() {
	b.Bids.Reset()
	b.Asks.Reset()
	b.LastUpdateID = 0
}

// Crossed reports whether the best bid is at or above the best ask.
func (b *Book) Crossed() bool {
	return b.Bids.Len() > 0 && b.Asks.Len() > 0 && b.Bids.levels[0].Px >= b.Asks.levels[0].Px
}

// delta appends to dst the changes that turn side levels old into new
// (both best first, on a side where better orders them): new levels and
// changed quantities as they are, levels gone with quantity "0".
func delta(dst []Level, old, new []Level, better func(a, b float64) bool) []Level {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new) || i < len(old) && better(old[i].Px, new[j].Px):
			dst = append(dst, Level{Px: old[i].Px, P: old[i].P, Q: "0"})
			i++
		case i == len(old) || better(new[j].Px, old[i].Px):
			dst = append(dst, new[j])
			j++
		default: // the same price
			if old[i].Q != new[j].Q {
				dst = append(dst, new[j])
			}
			i++
			j++
		}
	}
	return dst
}

// appendLevels appends levels as JSON: [["p","q"],…].
func appendLevels(b []byte, levels []Level) []byte {
	b = append(b, '[')
	for i, l := range levels {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `["`...)
		b = append(b, l.P...)
		b = append(b, `","`...)
		b = append(b, l.Q...)
		b = append(b, `"]`...)
	}
	return append(b, ']')
}

// AppendSnapshot appends the gateway's snapshot message of bids and asks
// at lastUpdateID: {"type":"snapshot","lastUpdateId":…,"bids":…,"asks":…},
// with "gap":true when it follows a resync.
func AppendSnapshot(b []byte, lastUpdateID int64, bids, asks []Level, gap bool) []byte {
	b = append(b, `{"type":"snapshot","lastUpdateId":`...)
	b = strconv.AppendInt(b, lastUpdateID, 10)
	b = append(b, `,"bids":`...)
	b = appendLevels(b, bids)
	b = append(b, `,"asks":`...)
	b = appendLevels(b, asks)
	if gap {
		b = append(b, `,"gap":true`...)
	}
	return append(b, '}')
}

// AppendUpdate appends the gateway's update message:
// {"type":"update","U":first,"u":last,"b":…,"a":…}.
func AppendUpdate(b []byte, first, last int64, bids, asks []Level) []byte {
	b = append(b, `{"type":"update","U":`...)
	b = strconv.AppendInt(b, first, 10)
	b = append(b, `,"u":`...)
	b = strconv.AppendInt(b, last, 10)
	b = append(b, `,"b":`...)
	b = appendLevels(b, bids)
	b = append(b, `,"a":`...)
	b = appendLevels(b, asks)
	return append(b, '}')
}
