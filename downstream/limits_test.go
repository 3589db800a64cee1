package downstream

import (
	"strings"
	"testing"

	"github.com/marketgate/marketgate/hub"
)

// TestSetLimits: New's limits (defaults filled) are the first in force;
// SetLimits replaces them all, and refuses a limit that is not positive,
// changing nothing. (Their effect on handshakes and subscribes is tested
// through a reload in cmd/marketgate.)
func TestSetLimits(t *testing.T) {
	srv, err := New(Config{Hub: hub.NewMemory(), Source: newFakeSource(), MaxStreamsPerConn: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := srv.Limits(), (Limits{MaxConnsPerIP: 1000, MaxStreamsPerConn: 4, MaxStreamsPerIP: 2048, MaxStreams: 8192, MaxCommandsPerSecond: 10}); got != want {
		t.Errorf("Limits() = %+v; want %+v", got, want)
	}
	next := Limits{MaxConnsPerIP: 1, MaxStreamsPerConn: 2, MaxStreamsPerIP: 3, MaxStreams: 4, MaxCommandsPerSecond: 5}
	if err := srv.SetLimits(next); err != nil || srv.Limits() != next {
		t.Errorf("SetLimits(%+v) = %v; Limits() = %+v", next, err, srv.Limits())
	}
	bad := next
	bad.MaxStreamsPerIP = 0
	if err := srv.SetLimits(bad); err == nil || !strings.Contains(err.Error(), "MaxStreamsPerIP 0 is not positive") || srv.Limits() != next {
		t.Errorf("SetLimits(%+v) = %v, Limits() = %+v; want an error naming MaxStreamsPerIP and no change", bad, err, srv.Limits())
	}
}
