package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/marketgate/marketgate/telemetry"
)

// manifests are the rendered Kubernetes objects, each decoded strictly
// into its API type (an unknown or misspelt field fails the decode).
type manifests struct {
	deployments  []appsv1.Deployment
	services     []corev1.Service
	pdbs         []policyv1.PodDisruptionBudget
	hpas         []autoscalingv2.HorizontalPodAutoscaler
	ingresses    []networkingv1.Ingress
	podMonitors  []monitoringv1.PodMonitor
	rules        []monitoringv1.PrometheusRule
	secrets      []corev1.Secret
	unrecognized []string
}

// kustomize renders the kustomization in dir as `kubectl apply -k` would
// (kustomize's own library, so no kubectl is needed) and decodes it.
func kustomize(t *testing.T, dir string) manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	var m manifests
	for _, r := range res.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		kind, name := r.GetKind(), r.GetName()
		decode := func(v any) {
			if err := yaml.UnmarshalStrict(b, v); err != nil {
				t.Errorf("%s %s: %v\n%s", kind, name, err, b)
			}
		}
		switch kind {
		case "Deployment":
			decode(appendNew(&m.deployments))
		case "Service":
			decode(appendNew(&m.services))
		case "PodDisruptionBudget":
			decode(appendNew(&m.pdbs))
		case "HorizontalPodAutoscaler":
			decode(appendNew(&m.hpas))
		case "Ingress":
			decode(appendNew(&m.ingresses))
		case "PodMonitor":
			decode(appendNew(&m.podMonitors))
		case "PrometheusRule":
			decode(appendNew(&m.rules))
		case "Secret":
			decode(appendNew(&m.secrets))
		default:
			m.unrecognized = append(m.unrecognized, kind+" "+name)
		}
	}
	return m
}

// appendNew appends a zero T to *s and returns a pointer to it.
func appendNew[T any](s *[]T) *T {
	var zero T
	*s = append(*s, zero)
	return &(*s)[len(*s)-1]
}

// withComponents writes a kustomization that takes the base in k8s/ with
// the named components, as a user's own would, and returns its folder.
func withComponents(t *testing.T, components ...string) string {
	t.Helper()
	base, err := filepath.Abs("k8s")
	if err != nil {
		t.Fatal(err)
	}
	// kustomize takes relative paths only.
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "resources:\n- %s\ncomponents:\n", rel)
	for _, c := range components {
		fmt.Fprintf(&b, "- %s\n", filepath.Join(rel, c))
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// containerPort returns the container port named name, or 0.
func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// env returns the container's variable name and whether it is set.
func env(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// TestKubernetesBase renders deploy/k8s and checks what issue 19 asks of
// it: every pod scrapable without a token (metrics listener, annotations),
// the admin port off the load-balanced Service and on a headless one, the
// HPA on the connections metric, and a memory limit for GOMEMLIMIT.
func TestKubernetesBase(t *testing.T) {
	m := kustomize(t, "k8s")
	if len(m.unrecognized) > 0 {
		t.Errorf("objects this test does not check: %v", m.unrecognized)
	}
	if len(m.deployments) != 1 || len(m.services) != 2 || len(m.pdbs) != 1 || len(m.hpas) != 1 {
		t.Fatalf("%d Deployments, %d Services, %d PDBs, %d HPAs; want 1, 2, 1, 1",
			len(m.deployments), len(m.services), len(m.pdbs), len(m.hpas))
	}
	if len(m.podMonitors)+len(m.ingresses) != 0 {
		t.Errorf("the base has a PodMonitor or an Ingress: those need the operator's CRDs or a host, so they are components")
	}
	d := m.deployments[0]
	pod := d.Spec.Template
	podLabels := labels.Set(pod.Labels)
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers; want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	t.Run("metrics listener", func(t *testing.T) {
		if !slices.Contains(c.Args, "--metrics-listen=:9090") {
			t.Errorf("args %q; want --metrics-listen=:9090", c.Args)
		}
		if p := containerPort(c, "metrics"); p != 9090 {
			t.Errorf("container port metrics = %d; want 9090", p)
		}
		want := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}
		for k, v := range want {
			if got := pod.Annotations[k]; got != v {
				t.Errorf("pod annotation %s = %q; want %q", k, got, v)
			}
		}
	})

	t.Run("admin listener", func(t *testing.T) {
		admin := containerPort(c, "admin")
		if admin == 0 || admin == 9090 {
			t.Fatalf("container port admin = %d; want one of its own", admin)
		}
		e, ok := env(c, "MARKETGATE_ADMIN_LISTEN")
		if !ok || e.Value != ":"+strconv.Itoa(int(admin)) {
			t.Errorf("MARKETGATE_ADMIN_LISTEN = %q; want :%d (the admin port)", e.Value, admin)
		}
		tok, ok := env(c, "MARKETGATE_ADMIN_TOKEN")
		if !ok || tok.ValueFrom == nil || tok.ValueFrom.SecretKeyRef == nil {
			t.Errorf("MARKETGATE_ADMIN_TOKEN is not from a Secret: the control listener beyond loopback needs it")
		}
	})

	t.Run("services", func(t *testing.T) {
		var public, headless *corev1.Service
		for i, s := range m.services {
			if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) || len(s.Spec.Selector) == 0 {
				t.Errorf("Service %s selects %v, not the pods (%v)", s.Name, s.Spec.Selector, pod.Labels)
			}
			for _, p := range s.Spec.Ports {
				if containerPort(c, p.TargetPort.String()) == 0 {
					t.Errorf("Service %s port %s targets %q, which the container does not name", s.Name, p.Name, p.TargetPort.String())
				}
			}
			if s.Spec.ClusterIP == corev1.ClusterIPNone {
				headless = &m.services[i]
			} else {
				public = &m.services[i]
			}
		}
		if public == nil || headless == nil {
			t.Fatal("want one load-balanced and one headless Service")
		}
		if len(public.Spec.Ports) != 1 || public.Spec.Ports[0].TargetPort.String() != "http" {
			t.Errorf("Service %s ports %v; want http alone (per-node listeners would mix nodes)", public.Name, public.Spec.Ports)
		}
		var names []string
		for _, p := range headless.Spec.Ports {
			names = append(names, p.TargetPort.String())
		}
		if !slices.Contains(names, "admin") || !slices.Contains(names, "metrics") {
			t.Errorf("headless Service %s targets %v; want admin and metrics", headless.Name, names)
		}
		if !headless.Spec.PublishNotReadyAddresses {
			t.Errorf("headless Service %s hides unready pods: a draining pod's control listener must stay reachable", headless.Name)
		}
	})

	t.Run("hpa", func(t *testing.T) {
		h := m.hpas[0]
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name {
			t.Errorf("HPA scales %s %s; want Deployment %s", h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name, d.Name)
		}
		var found bool
		for _, ms := range h.Spec.Metrics {
			if ms.Type != autoscalingv2.PodsMetricSourceType {
				continue
			}
			found = true
			name := ms.Pods.Metric.Name
			if !slices.Contains(telemetry.Families(), name) || !strings.Contains(name, "connections") {
				t.Errorf("HPA pods metric %q is not the gateway's connections gauge", name)
			}
			if v := ms.Pods.Target.AverageValue; v == nil || v.Value() <= 0 || v.Value() >= 10000 {
				t.Errorf("HPA target %v; want an average below --max-conns (10000)", v)
			}
		}
		if !found {
			t.Error("HPA has no pods metric (browser connections)")
		}
		adapter, err := os.ReadFile("k8s/prometheus-adapter.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var values struct {
			Rules struct {
				Custom []struct {
					SeriesQuery string `json:"seriesQuery"`
					Name        struct {
						As string `json:"as"`
					} `json:"name"`
				} `json:"custom"`
			} `json:"rules"`
		}
		if err := yaml.Unmarshal(adapter, &values); err != nil {
			t.Fatalf("k8s/prometheus-adapter.yaml: %v", err)
		}
		if len(values.Rules.Custom) != 1 || values.Rules.Custom[0].Name.As != "marketgate_connections_current" ||
			!strings.HasPrefix(values.Rules.Custom[0].SeriesQuery, "marketgate_connections_current{") {
			t.Errorf("k8s/prometheus-adapter.yaml rules %+v; want one that serves marketgate_connections_current", values.Rules.Custom)
		}
	})

	t.Run("memory limit", func(t *testing.T) {
		lim := c.Resources.Limits.Memory()
		if lim.IsZero() {
			t.Fatal("no memory limit: the gateway derives GOMEMLIMIT from it")
		}
		if req := c.Resources.Requests.Memory(); req.Cmp(*lim) > 0 {
			t.Errorf("memory request %v above the limit %v", req, lim)
		}
		if _, ok := env(c, "GOMEMLIMIT"); ok {
			t.Error("GOMEMLIMIT is set: it would have to be kept in step with the limit by hand; the gateway derives it")
		}
	})

	t.Run("pdb", func(t *testing.T) {
		ml := m.pdbs[0].Spec.Selector.MatchLabels
		if len(ml) == 0 || !labels.SelectorFromSet(ml).Matches(podLabels) {
			t.Errorf("PodDisruptionBudget selects %v, not the pods", m.pdbs[0].Spec.Selector)
		}
	})
}

// TestKubernetesComponents renders the base with the podmonitor and
// ingress components, as a user's kustomization would.
func TestKubernetesComponents(t *testing.T) {
	m := kustomize(t, withComponents(t, "podmonitor", "ingress"))
	if len(m.unrecognized) > 0 {
		t.Errorf("objects this test does not check: %v", m.unrecognized)
	}
	if len(m.podMonitors) != 1 || len(m.ingresses) != 1 || len(m.rules) != 1 || len(m.deployments) != 1 {
		t.Fatalf("%d PodMonitors, %d Ingresses, %d PrometheusRules, %d Deployments; want 1 each",
			len(m.podMonitors), len(m.ingresses), len(m.rules), len(m.deployments))
	}
	pod := m.deployments[0].Spec.Template
	c := pod.Spec.Containers[0]

	t.Run("podmonitor", func(t *testing.T) {
		pm := m.podMonitors[0]
		sel := labels.SelectorFromSet(pm.Spec.Selector.MatchLabels)
		if len(pm.Spec.Selector.MatchLabels) == 0 || !sel.Matches(labels.Set(pod.Labels)) {
			t.Errorf("PodMonitor selects %v, not the pods (%v)", pm.Spec.Selector.MatchLabels, pod.Labels)
		}
		if pm.Spec.JobLabel == "" || pod.Labels[pm.Spec.JobLabel] != "marketgate" {
			t.Errorf("PodMonitor jobLabel %q gives job %q; want marketgate (the alerts' job)", pm.Spec.JobLabel, pod.Labels[pm.Spec.JobLabel])
		}
		if len(pm.Spec.PodMetricsEndpoints) != 1 {
			t.Fatalf("%d endpoints; want 1", len(pm.Spec.PodMetricsEndpoints))
		}
		ep := pm.Spec.PodMetricsEndpoints[0]
		if ep.Port == nil || containerPort(c, *ep.Port) != 9090 || ep.Path != "/metrics" {
			t.Errorf("PodMonitor endpoint port %v path %q; want the metrics port (9090) and /metrics", ep.Port, ep.Path)
		}
	})

	t.Run("prometheusrule matches alerts.yml", func(t *testing.T) {
		b, err := os.ReadFile("prometheus/alerts.yml")
		if err != nil {
			t.Fatal(err)
		}
		var file struct {
			Groups []monitoringv1.RuleGroup `json:"groups"`
		}
		if err := yaml.UnmarshalStrict(b, &file); err != nil {
			t.Fatalf("prometheus/alerts.yml: %v", err)
		}
		if got := m.rules[0].Spec.Groups; !reflect.DeepEqual(got, file.Groups) {
			t.Errorf("k8s/podmonitor/prometheusrule.yaml's groups differ from prometheus/alerts.yml's: copy them over")
		}
	})

	t.Run("ingress", func(t *testing.T) {
		ing := m.ingresses[0]
		for _, k := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
			v, err := strconv.Atoi(ing.Annotations["nginx.ingress.kubernetes.io/"+k])
			if err != nil || v < 3600 {
				t.Errorf("annotation %s = %q; want at least 3600 s (WebSockets are long requests)", k, ing.Annotations["nginx.ingress.kubernetes.io/"+k])
			}
		}
		if ing.Annotations["nginx.ingress.kubernetes.io/proxy-buffering"] != "off" {
			t.Error("proxy buffering is not off")
		}
		if !strings.Contains(ing.Annotations["nginx.ingress.kubernetes.io/proxy-next-upstream"], "http_503") {
			t.Error("a handshake answered 503 (a draining pod) is not retried on another pod")
		}
		var public corev1.Service
		for _, s := range m.services {
			if s.Spec.ClusterIP != corev1.ClusterIPNone {
				public = s
			}
		}
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				be := p.Backend.Service
				if be == nil || be.Name != public.Name || be.Port.Name != "http" || p.Path != "/" {
					t.Errorf("Ingress path %q goes to %+v; want / to Service %s port http", p.Path, be, public.Name)
				}
			}
		}
	})
}
