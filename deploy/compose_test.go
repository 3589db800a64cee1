package deploy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// TestComposeRedisPassword checks that the compose Redis requires a
// password and that the nodes' URL carries the same one: an open Redis
// lets anyone who reaches it publish to every browser.
func TestComposeRedisPassword(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	compose := string(b)
	for _, want := range []string{
		"REDIS_PASSWORD: ${REDIS_PASSWORD:-",                // Redis's environment
		`requirepass "%s"\n' "$$REDIS_PASSWORD"`,            // its configuration
		"MARKETGATE_REDIS: redis://:${REDIS_PASSWORD:-",     // the nodes' URL
		`REDISCLI_AUTH=\"$$REDIS_PASSWORD\" redis-cli ping`, // the healthcheck authenticates
	} {
		if !strings.Contains(compose, want) {
			t.Errorf("docker-compose.yml has no %q", want)
		}
	}
	// Both defaults are the same password.
	def := func(after string) string {
		_, rest, _ := strings.Cut(compose, after)
		v, _, _ := strings.Cut(rest, "}")
		return v
	}
	if a, b := def("REDIS_PASSWORD: ${REDIS_PASSWORD:-"), def("redis://:${REDIS_PASSWORD:-"); a == "" || a != b {
		t.Errorf("Redis's default password %q differs from the nodes' %q", a, b)
	}
	if strings.Contains(compose, "redis://redis:") {
		t.Error("docker-compose.yml still has a Redis URL without a password")
	}
}

// loadCompose loads docker-compose.yml with compose's own loader (the one
// `docker compose config` uses) for the given profiles, with an empty
// environment so the defaults are what is checked.
func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"},
		cli.WithName("marketgate"), cli.WithWorkingDirectory("."), cli.WithProfiles(profiles), cli.WithEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("docker-compose.yml with profiles %q: %v", profiles, err)
	}
	return p
}

// TestComposeObservability checks the observability profile: Prometheus
// and Grafana only with it, their mounted files present, published on
// loopback only, Prometheus scraping every node's metrics listener, and
// Grafana's data source pointing at Prometheus.
func TestComposeObservability(t *testing.T) {
	plain := loadCompose(t)
	for _, name := range []string{"prometheus", "grafana"} {
		if _, ok := plain.Services[name]; ok {
			t.Errorf("%s runs without --profile observability", name)
		}
	}
	p := loadCompose(t, "observability")
	var nodes []string
	for name := range p.Services {
		if strings.HasPrefix(name, "node") {
			nodes = append(nodes, name)
		}
	}
	slices.Sort(nodes)
	if len(nodes) != 3 {
		t.Fatalf("nodes %v; want node1..node3", nodes)
	}
	for _, name := range []string{"prometheus", "grafana"} {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("no %s with --profile observability", name)
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s, which does not exist: %v", name, v.Source, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s mounts %s writable; want :ro", name, v.Source)
			}
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s on %q; want 127.0.0.1 only", name, port.Published, port.HostIP)
			}
		}
	}

	// Prometheus scrapes node:9090 for each node, the metrics listener the
	// image sets (MARKETGATE_METRICS_LISTEN=:9090 in the Dockerfile).
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), "MARKETGATE_METRICS_LISTEN=:9090") {
		t.Error("the Dockerfile does not set MARKETGATE_METRICS_LISTEN=:9090, which prometheus.yml scrapes")
	}
	var prom struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatalf("prometheus/prometheus.yml: %v", err)
	}
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName != "marketgate" {
			t.Errorf("scrape job %q; want marketgate (the alerts' job)", sc.JobName)
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	var want []string
	for _, n := range nodes {
		want = append(want, n+":9090")
	}
	slices.Sort(targets)
	if !slices.Equal(targets, want) {
		t.Errorf("Prometheus scrapes %v; want %v", targets, want)
	}
	// Every rule file is mounted where prometheus.yml looks for it.
	mounted := map[string]string{}
	for _, v := range p.Services["prometheus"].Volumes {
		mounted[v.Target] = v.Source
	}
	for _, rf := range prom.RuleFiles {
		if mounted[rf] == "" {
			t.Errorf("rule file %s is not mounted into prometheus", rf)
		}
	}
	if len(prom.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no alert rules")
	}

	// Grafana: the data source is the prometheus service, and the
	// dashboard file is mounted where the dashboard provider reads.
	var ds struct {
		Datasources []struct {
			Type      string `json:"type"`
			URL       string `json:"url"`
			IsDefault bool   `json:"isDefault"`
		} `json:"datasources"`
	}
	b, err = os.ReadFile("grafana/provisioning/datasources/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" || !ds.Datasources[0].IsDefault {
		t.Errorf("Grafana data sources %+v; want the prometheus service as the default", ds.Datasources)
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	b, err = os.ReadFile("grafana/provisioning/dashboards/marketgate.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prov); err != nil {
		t.Fatal(err)
	}
	gmounts := map[string]string{}
	for _, v := range p.Services["grafana"].Volumes {
		gmounts[v.Target] = v.Source
	}
	dash, _ := filepath.Abs("grafana/marketgate.json")
	if len(prov.Providers) != 1 || gmounts[prov.Providers[0].Options.Path+"/marketgate.json"] != dash {
		t.Errorf("Grafana reads dashboards from %+v; mounts %v; want grafana/marketgate.json there", prov.Providers, gmounts)
	}
	for _, dir := range []string{"/etc/grafana/provisioning/datasources", "/etc/grafana/provisioning/dashboards"} {
		if gmounts[dir] == "" {
			t.Errorf("Grafana has nothing mounted at %s", dir)
		}
	}
}
