package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// TestReadyCategories runs a Redis hub against servers it cannot use and
// checks what /readyz would say: a category naming the trouble, without
// the address, while the detail for the control listener keeps it.
func TestReadyCategories(t *testing.T) {
	pw := redistest.StartWith(t, redistest.Config{Password: "s3cret"})
	tlsSrv := redistest.StartWith(t, redistest.Config{TLS: true})
	down := redistest.Start(t)
	down.Kill()
	tests := []struct {
		name string
		opt  *redis.Options
		want string
	}{
		{"wrong password", &redis.Options{Addr: pw.Addr(), Password: "wrong"}, "redis auth failed"},
		{"no password", &redis.Options{Addr: pw.Addr()}, "redis auth failed"},
		{"unknown CA", func() *redis.Options {
			o := tlsSrv.Options()
			o.TLSConfig.RootCAs = nil // the system's roots
			return o
		}(), "redis TLS failed"},
		{"plain text to a TLS port", &redis.Options{Addr: tlsSrv.Addr()}, "redis unreachable"},
		{"server down", &redis.Options{Addr: down.Addr()}, "redis unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := hub.NewRedis(hub.RedisConfig{Options: tc.opt, NodeID: "n", ProbeInterval: 100 * time.Millisecond, ProbeTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- h.Run(ctx) }()
			defer func() { cancel(); <-done }()
			r := &readiness{draining: new(atomic.Bool), hub: h}
			waitfor.Cond(t, 10*time.Second, func() error {
				if got := r.Public(); got == nil || got.Error() != tc.want {
					return fmt.Errorf("public reason %v (detail %v); want %q", got, r.Detail(), tc.want)
				}
				return nil
			})
			if d := r.Detail(); d == nil || strings.Contains(r.Public().Error(), tc.opt.Addr) || !strings.HasPrefix(d.Error(), "redis: ") {
				t.Errorf("detail %v, public %v; want the detail in full and no address in public", d, r.Public())
			}
			t.Logf("detail: %v", r.Detail())
		})
	}
	r := &readiness{draining: new(atomic.Bool), hub: hub.NewMemory()}
	if err := r.Public(); err != nil {
		t.Errorf("memory hub: Public = %v; want ready", err)
	}
	r.draining.Store(true)
	if err := r.Public(); err == nil || err.Error() != "draining" {
		t.Errorf("draining: Public = %v; want draining", err)
	}
}
