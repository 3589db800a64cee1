package book

import (
	"fmt"
	"testing"
)

func levelsOf(ls []Level) string {
	out := ""
	for _, l := range ls {
		out += l.P + ":" + l.Q + " "
	}
	return out
}

func TestSideSet(t *testing.T) {
	tests := []struct {
		name string
		bids bool
		sets [][2]string
		max  int
		want string
	}{
		{"bids highest first", true, [][2]string{{"1.5", "1"}, {"2", "1"}, {"1", "1"}}, 0, "2:1 1.5:1 1:1 "},
		{"asks lowest first", false, [][2]string{{"1.5", "1"}, {"2", "1"}, {"1", "1"}}, 0, "1:1 1.5:1 2:1 "},
		{"zero in any spelling deletes", true, [][2]string{{"1", "1"}, {"2", "1"}, {"1.00", "0.00000000"}}, 0, "2:1 "},
		{"prices compared as numbers", true, [][2]string{{"10.0", "1"}, {"9.5", "1"}, {"10", "2"}}, 0, "10:2 9.5:1 "},
		{"deleting an absent level is nothing", false, [][2]string{{"3", "0"}}, 0, ""},
		{"the worst levels go past max", true, [][2]string{{"1", "1"}, {"2", "1"}, {"3", "1"}}, 2, "3:1 2:1 "},
		{"not a number is refused", true, [][2]string{{"x", "1"}, {"1", "y"}, {"1", "-1"}}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Side{bids: tc.bids}
			for _, l := range tc.sets {
				s.Set(l[0], l[1], tc.max)
			}
			if got := levelsOf(s.Top(0)); got != tc.want {
				t.Errorf("levels %q; want %q", got, tc.want)
			}
		})
	}
}

func TestDelta(t *testing.T) {
	lv := func(spec ...string) []Level {
		var out []Level
		for i := 0; i < len(spec); i += 2 {
			var px float64
			fmt.Sscan(spec[i], &px)
			out = append(out, Level{Px: px, P: spec[i], Q: spec[i+1]})
		}
		return out
	}
	bids := &Side{bids: true}
	tests := []struct {
		name     string
		old, new []Level
		want     string
	}{
		{"nothing changed", lv("3", "1", "2", "1"), lv("3", "1", "2", "1"), ""},
		{"quantity changed", lv("3", "1", "2", "1"), lv("3", "1", "2", "5"), "2:5 "},
		{"a level left the top", lv("3", "1", "2", "1"), lv("2", "1", "1", "1"), "3:0 1:1 "},
		{"a level entered", lv("3", "1"), lv("4", "1", "3", "1"), "4:1 "},
		{"all new", nil, lv("2", "1"), "2:1 "},
		{"all gone", lv("2", "1"), nil, "2:0 "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := levelsOf(delta(nil, tc.old, tc.new, bids.better)); got != tc.want {
				t.Errorf("delta %q; want %q", got, tc.want)
			}
		})
	}
}

func TestAppendMessages(t *testing.T) {
	ls := []Level{{Px: 1, P: "1.0", Q: "2.0"}}
	tests := []struct {
		name, got, want string
	}{
		{"snapshot", string(AppendSnapshot(nil, 7, ls, nil, false)), `{"type":"snapshot","lastUpdateId":7,"bids":[["1.0","2.0"]],"asks":[]}`},
		{"snapshot after a resync", string(AppendSnapshot(nil, 7, nil, ls, true)), `{"type":"snapshot","lastUpdateId":7,"bids":[],"asks":[["1.0","2.0"]],"gap":true}`},
		{"update", string(AppendUpdate(nil, 8, 9, ls, nil)), `{"type":"update","U":8,"u":9,"b":[["1.0","2.0"]],"a":[]}`},
		{"spot depth", string(Binance{}.AppendDepth(nil, 7, ls, ls, 5)), `{"lastUpdateId":7,"bids":[["1.0","2.0"]],"asks":[["1.0","2.0"]]}`},
		{"futures depth", string(Binance{Futures: true}.AppendDepth(nil, 7, ls, nil, 5)), `{"lastUpdateId":7,"E":5,"T":5,"bids":[["1.0","2.0"]],"asks":[]}`},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: %s; want %s", tc.name, tc.got, tc.want)
		}
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name   string
		symbol string
		n      int
		isBook bool
		err    bool
	}{
		{"btcusdt@book", "btcusdt", 0, true, false},
		{"btcusdt@book@20", "btcusdt", 20, true, false},
		{"btcusdt@book@7", "", 0, true, true},
		{"btcusdt@book@", "", 0, true, true},
		{"btcusdt@bookTicker", "", 0, false, false},
		{"btcusdt@book@x", "", 0, true, true},
		{"btcusdt@depth", "", 0, false, false},
		{"@book", "", 0, false, false},
		{"a@b@book", "", 0, false, false},
	}
	for _, tc := range tests {
		s, n, isBook, err := ParseName(tc.name)
		if s != tc.symbol || n != tc.n || isBook != tc.isBook || (err != nil) != tc.err {
			t.Errorf("ParseName(%q) = %q, %d, %v, %v; want %q, %d, %v, error %v", tc.name, s, n, isBook, err, tc.symbol, tc.n, tc.isBook, tc.err)
		}
	}
}
