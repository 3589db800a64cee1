package gateway

import "github.com/marketgate/marketgate/downstream"

// The settings a running gateway can change (for a reload on SIGHUP);
// every other setting of [Config] is fixed when [New] builds it. The
// browsers' token keys change through [Gateway.Verifier]'s SetKeys.

// SetAllowedOrigins replaces the browser origins allowed to open
// WebSockets and to read the market-data REST answers (Config.Browsers'
// and Config.AllowedOrigins; empty: any). Connections already open stay.
// Safe for concurrent use.
func (g *Gateway) SetAllowedOrigins(origins []string) {
	g.ds.SetAllowedOrigins(origins)
	if g.market != nil {
		g.market.SetAllowedOrigins(origins)
	}
}

// SetBrowserLimits replaces the browsers' limits (see
// downstream.Server.SetLimits): new handshakes, subscribes and commands
// are held to them; nothing open is closed. Safe for concurrent use.
func (g *Gateway) SetBrowserLimits(l downstream.Limits) error { return g.ds.SetLimits(l) }

// SetAdminToken replaces the control listener's bearer token
// (Config.AdminToken; empty: loopback clients only). It refuses a token
// shorter than admin.MinTokenLen, changing nothing, and does nothing
// without a control listener. Safe for concurrent use.
func (g *Gateway) SetAdminToken(token string) error {
	if g.admin == nil {
		return nil
	}
	return g.admin.SetToken(token)
}

// SetMetricsPublic sets whether the control listener serves /metrics
// without the token (Config.MetricsPublic). Safe for concurrent use.
func (g *Gateway) SetMetricsPublic(public bool) {
	if g.admin != nil {
		g.admin.SetMetricsPublic(public)
	}
}
