package kube

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// resources are the kinds cortex renders, by list path.
var resources = []string{
	"/api/v1/namespaces/%s/serviceaccounts", "/api/v1/namespaces/%s/services", "/api/v1/namespaces/%s/configmaps",
	"/api/v1/namespaces/%s/persistentvolumeclaims", "/api/v1/namespaces/%s/secrets",
	"/apis/apps/v1/namespaces/%s/deployments", "/apis/batch/v1/namespaces/%s/jobs",
	"/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies",
}

type objList struct {
	Items []struct {
		Metadata struct {
			Name            string            `json:"name"`
			ResourceVersion string            `json:"resourceVersion"`
			Labels          map[string]string `json:"labels"`
			ManagedFields   []struct {
				Manager string `json:"manager"`
			} `json:"managedFields"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec"`
	} `json:"items"`
}

// versions maps kind-path/name to the content of everything cortex
// manages in ns: the object without resourceVersion, managedFields and
// status (a PVC gets a new resourceVersion on the first re-apply, a
// server-side normalisation, though none of its fields change).
func (c *cluster) versions(t *testing.T, ns string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range resources {
		p := fmt.Sprintf(r, ns)
		code, body := c.get(t, p)
		if code != http.StatusOK {
			t.Fatalf("list %s: %d %s", p, code, body)
		}
		var l struct {
			Items []map[string]any `json:"items"`
		}
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Items {
			md := it["metadata"].(map[string]any)
			labels, _ := md["labels"].(map[string]any)
			if labels["app.kubernetes.io/managed-by"] != "cortex" {
				continue
			}
			delete(md, "resourceVersion")
			delete(md, "managedFields")
			delete(it, "status")
			b, _ := json.Marshal(it)
			out[p+"/"+md["name"].(string)] = string(b)
		}
	}
	return out
}

type deployed struct {
	Kind, Namespace, Name, Outcome string
	Warnings                       []string
}

// deploy runs cortex deploy --json and returns its results.
func (c *cluster) deploy(t *testing.T, dir string, args ...string) []deployed {
	t.Helper()
	out, stderr, code := cortex(t, dir, append([]string{"deploy", "--kubeconfig", c.kubeconfig, "--context", "e2e", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("cortex deploy %v: exit %d\n%s\n%s", args, code, out, stderr)
	}
	if strings.Contains(stderr, "Warning") {
		t.Errorf("the API server warned:\n%s", stderr)
	}
	var res []deployed
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("deploy output: %v\n%s", err, out)
	}
	for _, r := range res {
		if len(r.Warnings) > 0 {
			t.Errorf("%s/%s: warnings %v", r.Kind, r.Name, r.Warnings)
		}
	}
	return res
}

// systemNamespace creates what the Helm chart would: the system namespace
// and the bus token Secret.
func (c *cluster) systemNamespace(t *testing.T, ns string) {
	c.apply(t, "/api/v1/namespaces/"+ns, []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"`+ns+`"}}`))
	c.apply(t, "/api/v1/namespaces/"+ns+"/secrets/cortex-bus", []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"cortex-bus","namespace":"`+ns+`"},"stringData":{"token":"e2e-token"}}`))
}

// podsAdmitted creates, as dry runs, a Pod from every workload's template
// in ns: Pod Security admission enforces "restricted" on pods (on
// workloads it only warns), and the ServiceAccount admission checks the
// account exists. A template made privileged must then be refused, so the
// check is known to bite.
func (c *cluster) podsAdmitted(t *testing.T, ns string) int {
	t.Helper()
	n := 0
	for _, r := range []string{"/apis/apps/v1/namespaces/%s/deployments", "/apis/batch/v1/namespaces/%s/jobs"} {
		_, body := c.get(t, fmt.Sprintf(r, ns))
		var l objList
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Items {
			var spec struct {
				Template struct {
					Metadata map[string]any `json:"metadata"`
					Spec     map[string]any `json:"spec"`
				} `json:"template"`
			}
			if err := json.Unmarshal(it.Spec, &spec); err != nil {
				t.Fatal(err)
			}
			md := spec.Template.Metadata
			if md == nil {
				md = map[string]any{}
			}
			md["name"] = "dry-" + it.Metadata.Name
			pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec.Template.Spec}
			body, _ := json.Marshal(pod)
			if code, out := c.post(t, "/api/v1/namespaces/"+ns+"/pods?dryRun=All&fieldValidation=Strict", body); code != http.StatusCreated {
				t.Errorf("pod of %s refused: %d %s", it.Metadata.Name, code, out)
			}
			n++
			// The control: the same pod allowed to escalate privileges.
			cs := spec.Template.Spec["containers"].([]any)
			cs[0].(map[string]any)["securityContext"].(map[string]any)["allowPrivilegeEscalation"] = true
			md["name"] = "bad-" + it.Metadata.Name
			body, _ = json.Marshal(pod)
			if code, out := c.post(t, "/api/v1/namespaces/"+ns+"/pods?dryRun=All", body); code != http.StatusForbidden || !strings.Contains(string(out), "PodSecurity") {
				t.Errorf("a privilege-escalating pod of %s was not refused by Pod Security: %d %s", it.Metadata.Name, code, out)
			}
		}
	}
	return n
}

func (c *cluster) post(t *testing.T, path string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := c.client.Post(c.server+path, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 0, 4096)
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b
}

// TestDeployExampleSwarm: the example swarm, rendered and deployed with
// cortex deploy, is accepted by a real kube-apiserver (strict field
// validation, defaulting, Pod Security "restricted" admission on its
// pods); a second deploy is a no-op.
func TestDeployExampleSwarm(t *testing.T) {
	c := startCluster(t)
	c.systemNamespace(t, "cortex-system")
	root := repoRoot(t)
	const ns = "cortex-research-swarm"

	dir := t.TempDir()
	out, stderr, code := cortex(t, root, "render", "--kubernetes", "-o", dir, "examples/swarm")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if code != 0 || len(files) < 10 {
		t.Fatalf("render: exit %d, %d files\n%s%s", code, len(files), out, stderr)
	}

	// The current context has no credentials: refused, nothing applied.
	if out, stderr, code := cortex(t, root, "deploy", "--kubeconfig", c.kubeconfig, "examples/swarm"); code == 0 || !strings.Contains(stderr, "Forbidden") {
		t.Fatalf("deploy as an anonymous user: exit %d\n%s%s", code, out, stderr)
	}

	// A dry run needs the namespace.
	if _, stderr, code := cortex(t, root, "deploy", "--kubeconfig", c.kubeconfig, "--context", "e2e", "--dry-run", "examples/swarm"); code == 0 || !strings.Contains(stderr, "needs namespace") {
		t.Fatalf("dry run without the namespace: exit %d\n%s", code, stderr)
	}

	first := c.deploy(t, root, "examples/swarm")
	created := 0
	for _, r := range first {
		if r.Outcome == "created" {
			created++
		}
	}
	// Every rendered object plus the bus token Secret deploy copies and
	// the LLM tokens Secret it creates (the writer uses the LLM gateway).
	if created != len(files)+2 {
		t.Errorf("first deploy created %d objects, want %d: %+v", created, len(files)+2, first)
	}
	before := c.versions(t, ns)
	if len(before) != len(files)+1 {
		t.Errorf("%d cortex objects in %s, render wrote %d and deploy the LLM tokens Secret", len(before), ns, len(files))
	}

	second := c.deploy(t, root, "examples/swarm")
	for _, r := range second {
		if r.Outcome != "unchanged" {
			t.Errorf("second deploy: %s %s/%s", r.Outcome, r.Kind, r.Name)
		}
	}
	after := c.versions(t, ns)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed on a second deploy:\n%s\n%s", k, v, after[k])
		}
	}

	// A dry run of a changed render (the runtime's seccomp profile instead
	// of Cortex's) validates the change and persists nothing.
	cfg := filepath.Join(t.TempDir(), "kube.yaml")
	kc, _ := os.ReadFile(filepath.Join(root, "examples", "swarm", "cortex.kube.yaml"))
	_ = os.WriteFile(cfg, append(kc, []byte("seccomp: runtime-default\n")...), 0o644)
	llmCfg, _ := os.ReadFile(filepath.Join(root, "examples", "swarm", "llm.kube.yaml"))
	_ = os.WriteFile(filepath.Join(filepath.Dir(cfg), "llm.kube.yaml"), llmCfg, 0o644)
	outcomes := map[string]int{}
	for _, r := range c.deploy(t, root, "--dry-run", "--config", cfg, "examples/swarm") {
		outcomes[r.Outcome]++
	}
	// The gateways' Deployments (three egress, one LLM) change; the
	// agents' Jobs (immutable templates) would be replaced.
	if outcomes["configured"] != 4 || outcomes["replaced"] != 3 {
		t.Errorf("dry run of a changed seccomp mode: %v, want 4 configured and 3 replaced", outcomes)
	}
	for k, v := range c.versions(t, ns) {
		if after[k] != v {
			t.Errorf("%s changed in a dry run", k)
		}
	}
	// For real: the Jobs are replaced; a further deploy changes nothing.
	outcomes = map[string]int{}
	for _, r := range c.deploy(t, root, "--config", cfg, "examples/swarm") {
		outcomes[r.Outcome]++
	}
	if outcomes["configured"] != 4 || outcomes["replaced"] != 3 {
		t.Errorf("deploy of a changed seccomp mode: %v, want 4 configured and 3 replaced", outcomes)
	}
	_, job := c.get(t, "/apis/batch/v1/namespaces/"+ns+"/jobs/writer")
	if !strings.Contains(string(job), `"type":"RuntimeDefault"`) {
		t.Errorf("replaced Job lacks the new seccomp profile: %.300s", job)
	}
	for _, r := range c.deploy(t, root, "--config", cfg, "examples/swarm") {
		if r.Outcome != "unchanged" {
			t.Errorf("deploy after the replacement: %s %s/%s", r.Outcome, r.Kind, r.Name)
		}
	}

	// The namespace enforces Pod Security "restricted", and every pod the
	// workloads would create passes it.
	_, nsBody := c.get(t, "/api/v1/namespaces/"+ns)
	if !strings.Contains(string(nsBody), `"pod-security.kubernetes.io/enforce":"restricted"`) {
		t.Errorf("namespace labels: %s", nsBody)
	}
	if n := c.podsAdmitted(t, ns); n != 7 {
		t.Errorf("%d workloads' pods checked, want 7 (3 agents, 3 egress gateways, the LLM gateway)", n)
	}
}

// TestDeployEveryWall: the fixture with every mappable wall (LLM gateway,
// claims, emptyDir volumes, runtime-default seccomp, a Deployment) is
// accepted too, and deploy creates the LLM tokens Secret once.
func TestDeployEveryWall(t *testing.T) {
	c := startCluster(t)
	c.systemNamespace(t, "cortex-infra")
	fixture := filepath.Join(repoRoot(t), "internal", "kube", "testdata", "render", "all-walls")
	proj := t.TempDir()
	m, _ := os.ReadFile(filepath.Join(fixture, "cortex.yaml"))
	kc, _ := os.ReadFile(filepath.Join(fixture, "cortex.kube.yaml"))
	llmCfg, _ := os.ReadFile(filepath.Join(fixture, "llm.yaml"))
	kcs := strings.Replace(string(kc), "bundle: registry.internal:5000/teams/walls@sha256:1111111111111111111111111111111111111111111111111111111111111111", "registry: registry.internal:5000/teams", 1)
	for p, content := range map[string]string{
		"cortex.yaml": string(m), "cortex.kube.yaml": kcs, "llm.yaml": string(llmCfg),
		"agents/__init__.py": "", "agents/crawler.py": "def main(): pass\n", "notifier/index.js": "exports.run = () => {}\n",
		"seeds/a.txt": "seed\n", "prompts/system.txt": "be brief\n",
	} {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(proj, p)), 0o755)
		if err := os.WriteFile(filepath.Join(proj, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.deploy(t, proj, ".")
	before := c.versions(t, "walls-prod")
	_, tok := c.get(t, "/api/v1/namespaces/walls-prod/secrets/cortex-llm-tokens")
	if !strings.Contains(string(tok), `"crawler":`) {
		t.Fatalf("LLM tokens Secret: %s", tok)
	}
	for _, r := range c.deploy(t, proj, ".") {
		if r.Outcome != "unchanged" {
			t.Errorf("second deploy: %s %s/%s", r.Outcome, r.Kind, r.Name)
		}
	}
	after := c.versions(t, "walls-prod")
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed on a second deploy", k)
		}
	}
	if n := c.podsAdmitted(t, "walls-prod"); n != 5 {
		t.Errorf("%d workloads' pods checked, want 5", n)
	}
}
