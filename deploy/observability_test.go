package deploy_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/marketgate/marketgate/telemetry"
)

// metricName finds the marketgate metrics a query refers to.
var metricName = regexp.MustCompile(`marketgate_[a-z0-9_]+`)

// checkNames fails t for every marketgate metric in text that the gateway
// does not export (histogram series _bucket, _sum, _count included).
func checkNames(t *testing.T, file, text string) {
	t.Helper()
	fams := telemetry.Families()
	names := metricName.FindAllString(text, -1)
	if len(names) == 0 {
		t.Fatalf("%s refers to no marketgate metric", file)
	}
	for _, n := range names {
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !slices.Contains(fams, n) && !slices.Contains(fams, base) {
			t.Errorf("%s refers to %s, which the gateway does not export", file, n)
		}
	}
}

// TestGrafanaDashboard checks that the dashboard is valid JSON whose every
// panel queries metrics the gateway exports.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/marketgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/marketgate.json: %v", err)
	}
	if len(dash.Panels) < 10 {
		t.Fatalf("%d panels; want the dashboard's", len(dash.Panels))
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 || p.Targets[0].Expr == "" {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	checkNames(t, "grafana/marketgate.json", string(b))
}

// TestAlertRules checks the alert rules' shape (every rule has an alert
// name, an expression and a summary) and that they use exported metrics.
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	alerts := strings.Count(text, "- alert: ")
	if alerts < 5 || strings.Count(text, "expr: ") != alerts || strings.Count(text, "summary: ") != alerts {
		t.Errorf("%d alerts, %d expr, %d summaries; want one of each per alert, and at least 5 alerts",
			alerts, strings.Count(text, "expr: "), strings.Count(text, "summary: "))
	}
	for _, want := range []string{"MarketgateUpstreamDown", "MarketgateHubUnhealthy", "MarketgateSlowConsumerClosesRising", "MarketgateNodeNotReady"} {
		if !strings.Contains(text, "- alert: "+want+"\n") {
			t.Errorf("no alert %s", want)
		}
	}
	checkNames(t, "prometheus/alerts.yml", text)
}
