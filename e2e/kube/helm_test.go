package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"sigs.k8s.io/yaml"
)

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "deploy", "helm", "cortex") }

// TestHelmLint is helm lint --strict on deploy/helm/cortex (helm's own
// lint package; no helm binary needed), with the default values and a
// single-replica NATS.
func TestHelmLint(t *testing.T) {
	for _, vals := range []map[string]any{nil, {"nats": map[string]any{"replicas": 1}, "seccomp": map[string]any{"enabled": false}}} {
		l := action.NewLint()
		l.Strict = true
		l.Namespace = "cortex-system"
		res := l.Run([]string{chartDir(t)}, vals)
		for _, m := range res.Messages {
			if m.Severity > support.InfoSev {
				t.Errorf("lint %v: %s", vals, m.Error())
			}
		}
		for _, err := range res.Errors {
			t.Errorf("lint %v: %v", vals, err)
		}
		if res.TotalChartsLinted != 1 {
			t.Errorf("linted %d charts", res.TotalChartsLinted)
		}
	}
}

// renderChart renders the chart's templates as helm template would.
func renderChart(t *testing.T, ns string) map[string]string {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := util.ToRenderValues(ch, nil, common.ReleaseOptions{Name: "cortex", Namespace: ns, IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHelmChartApplies: the chart's objects are accepted by the real API
// server, and its seccomp profile is the one cortex render names in pods.
func TestHelmChartApplies(t *testing.T) {
	c := startCluster(t)
	const ns = "cortex-system"
	c.apply(t, "/api/v1/namespaces/"+ns, []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"`+ns+`","labels":{"pod-security.kubernetes.io/enforce":"privileged"}}}`))
	paths := map[string]string{
		"Secret": "/api/v1/namespaces/%s/secrets/", "ConfigMap": "/api/v1/namespaces/%s/configmaps/", "Service": "/api/v1/namespaces/%s/services/",
		"StatefulSet": "/apis/apps/v1/namespaces/%s/statefulsets/", "DaemonSet": "/apis/apps/v1/namespaces/%s/daemonsets/",
		"NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies/",
	}
	files := renderChart(t, ns)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	kinds := map[string]int{}
	var seccompKey string
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(files[n], "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			j, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			var o struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Data map[string]string `json:"data"`
			}
			if err := json.Unmarshal(j, &o); err != nil || o.Kind == "" {
				continue
			}
			p, ok := paths[o.Kind]
			if !ok {
				t.Fatalf("%s: kind %s has no path here", n, o.Kind)
			}
			c.apply(t, strings.Replace(p, "%s", ns, 1)+o.Metadata.Name, j)
			kinds[o.Kind]++
			if o.Kind == "ConfigMap" && o.Metadata.Name == "cortex-seccomp" {
				for k := range o.Data {
					seccompKey = k
				}
			}
		}
	}
	for _, k := range []string{"Secret", "ConfigMap", "Service", "StatefulSet", "DaemonSet", "NetworkPolicy"} {
		if kinds[k] == 0 {
			t.Errorf("the chart renders no %s", k)
		}
	}
	profile, _ := os.ReadFile(filepath.Join(chartDir(t), "files", "seccomp", "agent.json"))
	h := sha256.Sum256(profile)
	if want := "agent-" + hex.EncodeToString(h[:6]) + ".json"; seccompKey != want {
		t.Errorf("chart installs %q, want %q", seccompKey, want)
	}
	out, _, code := cortex(t, repoRoot(t), "render", "--kubernetes", "examples/swarm")
	if code != 0 || !strings.Contains(out, "localhostProfile: cortex/"+seccompKey) {
		t.Errorf("cortex render does not name the chart's profile cortex/%s", seccompKey)
	}
}
