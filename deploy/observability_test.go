package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/marketgate/marketgate/telemetry"
)

// metricName finds the metrics a query refers to: the gateway's own and
// the Go runtime's and process's, which its /metrics serves too.
var metricName = regexp.MustCompile(`\b(?:marketgate|go|process)_[a-z0-9_]+`)

// exported is every metric family the gateway's /metrics serves: its own
// (all of them, whether or not they have a value yet) and the Go and
// process collectors' of the same registry.
func exported(t *testing.T) []string {
	t.Helper()
	fams := telemetry.Families()
	mfs, err := telemetry.NewRegistry(telemetry.Sources{}).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		fams = append(fams, mf.GetName())
	}
	return fams
}

// checkNames fails t for every metric in text that the gateway does not
// export (histogram series _bucket, _sum, _count included).
func checkNames(t *testing.T, file, text string) {
	t.Helper()
	fams := exported(t)
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

// promtool returns Prometheus's promtool: on PATH, or where .ci/test.sh
// unpacks it (the user cache folder's marketgate/prometheus).
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if dir, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(dir, "marketgate", "prometheus", "usr", "bin", "promtool")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("promtool not found: run ./.ci/test.sh once (it unpacks Debian's prometheus package into ~/.cache/marketgate/prometheus), or apt-get install -y prometheus")
	return ""
}

// runPromtool runs promtool with args and fails t with its output when it
// fails.
func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

// grafanaVars are the dashboard's variables with values that make its
// queries plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h", `"$instance"`, `".*"`)

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
			ID          int
			Title       string
			FieldConfig struct {
				Defaults struct {
					Unit string
				}
				Overrides []json.RawMessage
			}
			Targets []struct {
				RefID string
				Expr  string
			}
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/marketgate.json: %v", err)
	}
	if len(dash.Panels) < 10 {
		t.Fatalf("%d panels; want the dashboard's", len(dash.Panels))
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 || p.Targets[0].Expr == "" {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			expr := grafanaVars.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q query %q uses a variable the dashboard does not define", p.Title, tg.Expr)
			}
			q, _ := json.Marshal(expr) // a JSON string is a YAML string
			fmt.Fprintf(&rules, "      - record: panel_%d_%s\n        expr: %s\n", p.ID, tg.RefID, q)
		}
		// A panel of bytes next to a count (RSS and goroutines) must give
		// the count its own unit, or it reads as bytes on one axis.
		if strings.Contains(p.Title, "memory") && len(p.Targets) > 1 {
			if p.FieldConfig.Defaults.Unit != "bytes" || len(p.FieldConfig.Overrides) == 0 {
				t.Errorf("panel %q: unit %q with %d overrides; want bytes, and its own unit for the count",
					p.Title, p.FieldConfig.Defaults.Unit, len(p.FieldConfig.Overrides))
			}
		}
		if strings.Contains(p.Title, "per second") && !slices.Contains([]string{"reqps", "cps", "ops", "Bps", "binBps"}, p.FieldConfig.Defaults.Unit) {
			t.Errorf("panel %q: unit %q; want a rate unit", p.Title, p.FieldConfig.Defaults.Unit)
		}
	}
	checkNames(t, "grafana/marketgate.json", string(b))
	// Every query parses: promtool checks them as recording rules.
	f := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, "check", "rules", f)
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
	runPromtool(t, "check", "rules", "prometheus/alerts.yml")
}

// TestPrometheusConfig checks prometheus/prometheus.yml with promtool as
// the compose Prometheus sees it: the files compose mounts into the
// container are laid out the same way under a temporary root.
func TestPrometheusConfig(t *testing.T) {
	p := loadCompose(t, "observability")
	root := t.TempDir()
	var config string
	for _, v := range p.Services["prometheus"].Volumes {
		b, err := os.ReadFile(v.Source)
		if err != nil {
			t.Fatal(err)
		}
		// Absolute paths in the configuration point into the container.
		b = []byte(strings.ReplaceAll(string(b), " /etc/prometheus/", " "+filepath.Join(root, "etc", "prometheus")+"/"))
		dst := filepath.Join(root, v.Target)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if v.Target == "/etc/prometheus/prometheus.yml" {
			config = dst
		}
	}
	if config == "" {
		t.Fatal("compose mounts no /etc/prometheus/prometheus.yml")
	}
	runPromtool(t, "check", "config", config)
}

// TestAlertRulesYAML checks that alerts.yml is plain YAML that the
// PrometheusRule (k8s/podmonitor) can carry: every rule has its fields.
func TestAlertRulesYAML(t *testing.T) {
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
				Annotations      map[string]string
			}
		}
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("prometheus/alerts.yml: %v", err)
	}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: severity %q, summary %q, description %q; want all three", r.Alert, r.Labels["severity"], r.Annotations["summary"], r.Annotations["description"])
			}
		}
	}
}
