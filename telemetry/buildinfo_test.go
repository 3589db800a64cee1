package telemetry_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/marketgate/marketgate/internal/version"
	"github.com/marketgate/marketgate/telemetry"
)

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(telemetry.BuildInfo(version.Info{Version: "v1.2.3", Revision: "abc123", GoVersion: "go1.26.0"}))
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "marketgate_build_info" || mfs[0].GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("BuildInfo gathers %v, %v; want marketgate_build_info 1", mfs, err)
	}
	if got := labelsOf(mfs[0].GetMetric()[0]); got != "goversion=go1.26.0,revision=abc123,version=v1.2.3" {
		t.Errorf("labels %s; want goversion, revision and version", got)
	}
	// The registry the gateway serves has it, with the running build's
	// values, and Families lists it for dashboards and alert rules.
	mfs, err = telemetry.NewRegistry(telemetry.Sources{}).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, mf := range mfs {
		if mf.GetName() == "marketgate_build_info" {
			found = true
			labels := map[string]string{}
			for _, l := range mf.GetMetric()[0].GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if got := version.Get(); labels["version"] != got.Version || labels["revision"] != got.Revision || labels["goversion"] != got.GoVersion {
				t.Errorf("labels %v; want %+v", labels, got)
			}
		}
	}
	if !found {
		t.Error("NewRegistry has no marketgate_build_info")
	}
	if !slices.Contains(telemetry.Families(), "marketgate_build_info") {
		t.Error("Families() does not list marketgate_build_info")
	}
}

// labelsOf returns m's labels as name=value, comma-separated, sorted.
func labelsOf(m *dto.Metric) string {
	var out []string
	for _, l := range m.GetLabel() {
		out = append(out, l.GetName()+"="+l.GetValue())
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}
