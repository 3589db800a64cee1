package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/marketgate/marketgate/internal/version"
)

const buildInfoName = "marketgate_build_info"

// BuildInfo returns the collector of marketgate_build_info
// {version,revision,goversion}, always 1: which build a node runs, for
// dashboards and for alerts on a fleet running mixed versions
// (e.g. count by (version) (marketgate_build_info) > 1 for long).
func BuildInfo(info version.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        buildInfoName,
		Help:        "Always 1; the labels say which build of marketgate the node runs: version, VCS revision and Go version.",
		ConstLabels: prometheus.Labels{"version": info.Version, "revision": info.Revision, "goversion": info.GoVersion},
	})
	g.Set(1)
	return g
}
