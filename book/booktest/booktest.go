// Package booktest keeps an order book from a book stream the way a
// client of the gateway does, for tests across packages.
package booktest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/marketgate/marketgate/book"
)

// Follower keeps a book from the messages of one book stream by the
// gateway's contract: any snapshot replaces the book, each update must
// start at the previous u + 1. Safe for concurrent use.
type Follower struct {
	mu        sync.Mutex
	book      *book.Book
	snapshots int
	gaps      int // snapshots with "gap":true
	updates   int
	stale     int
	broken    []string
}

// message is a book message.
type message struct {
	Type         string      `json:"type"`
	LastUpdateID int64       `json:"lastUpdateId"`
	First        int64       `json:"U"`
	Last         int64       `json:"u"`
	Bids         [][2]string `json:"bids"`
	Asks         [][2]string `json:"asks"`
	B            [][2]string `json:"b"`
	A            [][2]string `json:"a"`
	Gap          bool        `json:"gap"`
}

// Apply applies one message's data.
func (f *Follower) Apply(data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		f.broken = append(f.broken, fmt.Sprintf("%v: %.100s", err, data))
		return
	}
	switch m.Type {
	case "snapshot":
		f.book = book.NewBook(0)
		f.snapshots++
		if m.Gap {
			f.gaps++
		}
		set(f.book, m.Bids, m.Asks)
		f.book.LastUpdateID = m.LastUpdateID
	case "update":
		if f.book == nil {
			f.broken = append(f.broken, "update before a snapshot")
			return
		}
		if m.First != f.book.LastUpdateID+1 {
			f.broken = append(f.broken, fmt.Sprintf("update U %d after u %d", m.First, f.book.LastUpdateID))
		}
		set(f.book, m.B, m.A)
		f.book.LastUpdateID = m.Last
		f.updates++
	case "stale":
		f.stale++
	default:
		f.broken = append(f.broken, fmt.Sprintf("unknown message %.100s", data))
	}
}

func set(b *book.Book, bids, asks [][2]string) {
	for _, l := range bids {
		b.Set(true, l[0], l[1])
	}
	for _, l := range asks {
		b.Set(false, l[0], l[1])
	}
}

// Counts returns the snapshots seen, those with "gap":true, the updates
// and the stale notices.
func (f *Follower) Counts() (snapshots, gaps, updates, stale int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snapshots, f.gaps, f.updates, f.stale
}

// Broken returns the breaches of the contract seen.
func (f *Follower) Broken() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.broken...)
}

// LastUpdateID returns the book's update id; 0 before a snapshot.
func (f *Follower) LastUpdateID() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.book == nil {
		return 0
	}
	return f.book.LastUpdateID
}

// Diff compares the book's top n levels (all with n <= 0) with bids and
// asks (as an exchange snapshot spells them, compared as numbers) and
// says how they differ; "" when they are equal.
func (f *Follower) Diff(bids, asks [][2]string, n int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.book == nil {
		return "no book yet"
	}
	if d := diffSide("bid", f.book.Bids.Top(n), bids, n); d != "" {
		return d
	}
	return diffSide("ask", f.book.Asks.Top(n), asks, n)
}

func diffSide(side string, got []book.Level, want [][2]string, n int) string {
	if n > 0 && len(want) > n {
		want = want[:n]
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d %s levels; want %d", len(got), side, len(want))
	}
	for i, l := range got {
		wp, _ := strconv.ParseFloat(want[i][0], 64)
		wq, _ := strconv.ParseFloat(want[i][1], 64)
		gq, _ := strconv.ParseFloat(l.Q, 64)
		if l.Px != wp || gq != wq {
			return fmt.Sprintf("%s level %d = %s %s; want %s %s", side, i, l.P, l.Q, want[i][0], want[i][1])
		}
	}
	return ""
}
