package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/upstream"
	"github.com/redis/go-redis/v9"
)

// readiness says whether the node takes new clients, in two forms: the
// detail for the control listener (GET /api/v1/ready), which names Redis
// addresses, keys and exchange errors, and categories for the public
// /readyz, which anyone can read ("redis auth failed", "upstream not
// connected: binance").
type readiness struct {
	draining *atomic.Bool
	hub      hub.Hub
	node     *cluster.Node // nil on a single node
	feeds    []*upstream.Feed
}

// unready is one reason, with its public category.
type unready struct {
	category string
	err      error
}

func (r *readiness) check() []unready {
	if r.draining.Load() {
		return []unready{{"draining", errors.New("draining")}}
	}
	var out []unready
	if err := r.hub.Ready(); err != nil {
		out = append(out, unready{redisCategory(err, "redis unreachable"), err})
	}
	if r.node != nil {
		// The owner's feeds tell about the exchange; elsewhere the
		// cluster's health does.
		if err := r.node.Ready(); err != nil {
			out = append(out, unready{redisCategory(err, "cluster not ready"), err})
		}
		return out
	}
	for _, f := range r.feeds {
		if err := f.Ready(); err != nil {
			out = append(out, unready{"upstream not connected: " + f.Name(), err})
		}
	}
	return out
}

// Detail returns every reason in full, or nil when ready.
func (r *readiness) Detail() error {
	var errs []error
	for _, u := range r.check() {
		errs = append(errs, u.err)
	}
	return errors.Join(errs...)
}

// Public returns the categories of the reasons, without addresses or key
// names, or nil when ready.
func (r *readiness) Public() error {
	var cats []string
	for _, u := range r.check() {
		if !slices.Contains(cats, u.category) {
			cats = append(cats, u.category)
		}
	}
	if len(cats) == 0 {
		return nil
	}
	return errors.New(strings.Join(cats, "; "))
}

// redisCategory names what is wrong with Redis in err, or returns other.
func redisCategory(err error, other string) string {
	switch {
	case redis.IsAuthError(err):
		return "redis auth failed"
	case redis.IsPermissionError(err):
		return "redis permission denied"
	case isTLSError(err):
		return "redis TLS failed"
	case errors.Is(err, hub.ErrStarting):
		return "redis starting"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "redis unreachable"
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return "redis unreachable"
	}
	return other
}

// isTLSError reports whether err is a failed TLS handshake or certificate
// check.
func isTLSError(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.AlertError](err); ok {
		return true
	}
	// go-redis and the handshake do not always wrap: the text is the
	// last resort.
	s := err.Error()
	return strings.Contains(s, "tls: ") || strings.Contains(s, "x509: ")
}
