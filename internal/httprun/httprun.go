// Package httprun runs an [http.Server] for the lifetime of a context, the
// way every listener of the gateway stops: requests in flight get a grace
// period, what is left after it is closed.
package httprun

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Run serves srv on ln until ctx ends, then shuts srv down: it waits up to
// grace for the requests in flight and closes the connections still open
// after that. It returns once Serve has returned: Serve's error when
// serving stopped by itself, else nil, or Shutdown's error (wrapping
// [context.DeadlineExceeded] when grace was not enough).
func Run(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
		err = fmt.Errorf("shutdown: %w", err)
	}
	<-errc
	return err
}
