package pause

import (
	"context"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want bool
	}{
		{"waits", live, time.Millisecond, true},
		{"no wait", live, 0, true},
		{"ended context", ended, time.Hour, false},
		{"ended context, no wait", ended, 0, false},
	}
	for _, tc := range tests {
		if got := For(tc.ctx, tc.d); got != tc.want {
			t.Errorf("%s: For = %v; want %v", tc.name, got, tc.want)
		}
	}
}
