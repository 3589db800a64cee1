// Package waitfor lets tests wait on a condition instead of sleeping: the
// tests of every package start real servers and clients, and poll for the
// state they expect with a bound on the wait.
package waitfor

import (
	"testing"
	"time"
)

// Cond polls cond every few milliseconds until it returns nil, and fails t
// with cond's last error if that takes longer than d.
func Cond(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
