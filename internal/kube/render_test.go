package kube

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
)

const testBundle = "registry.example.com/cortex-examples/research-swarm@sha256:2222222222222222222222222222222222222222222222222222222222222222"

// input reads a manifest (and cortex.kube.yaml beside it) as the CLI does.
func input(t *testing.T, manifestPath string, has ...string) Input {
	t.Helper()
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Check(bytes.NewReader(data), "cortex.yaml", manifest.ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defs, err := config.Default().DaemonDefaults()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(filepath.Join(filepath.Dir(manifestPath), ConfigFile), true)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, h := range has {
		set[h] = true
	}
	bundle := testBundle
	if cfg.Bundle != "" {
		bundle = cfg.Bundle
	}
	in := Input{Manifest: m, Agents: m.Resolve(defs), Bundle: bundle, Config: cfg, Version: "test",
		BundleHas: func(p string) bool { return set[p] }}
	if cfg.LLMConfig != "" {
		data, err := os.ReadFile(filepath.Join(cfg.Dir, cfg.LLMConfig))
		if err != nil {
			t.Fatal(err)
		}
		lc, err := config.ParseLLM(data, cfg.LLMConfig)
		if err != nil {
			t.Fatal(err)
		}
		in.LLMConfig = data
		for a := range lc.Aliases {
			in.LLMAliases = append(in.LLMAliases, a)
		}
	}
	return in
}

// cases are the renders kept as golden files under testdata/golden/<name>.
var cases = []struct {
	name, manifest string
	has            []string
}{
	{"swarm", filepath.Join("..", "..", "examples", "swarm", "cortex.yaml"), []string{"data"}},
	{"all-walls", filepath.Join("testdata", "render", "all-walls", "cortex.yaml"), []string{"seeds", "prompts/system.txt"}},
}

// TestGolden renders each case and compares every file with
// testdata/golden/<case>/ (go test ./internal/kube -run TestGolden -update
// rewrites them).
func TestGolden(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Render(input(t, tc.manifest, tc.has...))
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join("testdata", "golden", tc.name)
			if *update {
				if _, err := WriteDir(dir, res.Objects); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
			if len(want) != len(res.Objects) {
				t.Errorf("%d objects, %d golden files", len(res.Objects), len(want))
			}
			for i, o := range res.Objects {
				got, err := YAML(o)
				if err != nil {
					t.Fatal(err)
				}
				exp, err := os.ReadFile(filepath.Join(dir, FileName(i, o)))
				if err != nil {
					t.Errorf("%v (run with -update after checking the change)", err)
					continue
				}
				if !bytes.Equal(got, exp) {
					t.Errorf("%s differs from the golden file:\n%s", FileName(i, o), lineDiff(string(exp), string(got)))
				}
			}
		})
	}
}

func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + itoa(i+1) + ":\n- " + x + "\n+ " + y
		}
	}
	return ""
}

func itoa(i int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + jsonNum(i)) }

func jsonNum(i int) string { b, _ := json.Marshal(i); return string(b) }

// settings lists every setting of the resolved agents and the manifest,
// as field paths, that must each be traced to object fields.
func settings(m *manifest.Manifest, agents []manifest.ResolvedAgent) []string {
	var out []string
	for i, a := range agents {
		at := func(f string) string { return "agents[" + jsonNum(i) + "]." + f }
		out = append(out, at("runtime"), at("entrypoint"), at("restart_policy"), at("resources.cpu_limit"), at("resources.mem_limit"),
			// Walls every agent has whatever it declares.
			at("filesystem"), at("syscalls"), at("network"), at("bus"))
		if a.RestartPolicy != manifest.RestartAlways {
			out = append(out, at("max_restarts"))
		}
		if a.Limits.Pids > 0 {
			out = append(out, at("resources.pids_limit"))
		}
		for j := range a.Env {
			out = append(out, at("env["+jsonNum(j)+"]"))
		}
		c := a.Capabilities
		capAt := func(n string) string { return at("capabilities." + n) }
		if len(c.NetworkAccess) > 0 {
			out = append(out, capAt(manifest.CapNetworkAccess))
		}
		for j := range c.FilesystemRead {
			out = append(out, capAt(manifest.CapFilesystemRead)+"["+jsonNum(j)+"]")
		}
		for j := range c.FilesystemWrite {
			out = append(out, capAt(manifest.CapFilesystemWrite)+"["+jsonNum(j)+"]")
		}
		if c.BusPublish != nil {
			out = append(out, capAt(manifest.CapBusPublish))
		}
		if c.BusSubscribe != nil {
			out = append(out, capAt(manifest.CapBusSubscribe))
		}
		if len(c.BusDurable) > 0 {
			out = append(out, capAt(manifest.CapBusDurable))
		}
		if len(c.LLMAccess) > 0 {
			out = append(out, capAt(manifest.CapLLMAccess))
		}
		if c.LLMBudget != nil {
			out = append(out, capAt(manifest.CapLLMBudget))
		}
		// observability.metrics, security.logging: strict and bus.broker
		// are refused (TestUnmappable); security.logging: default changes
		// nothing.
	}
	return out
}

// TestEveryWallMaps: every setting of the manifest (each capability,
// resource, restart setting, env entry, and the walls every agent has) is
// traced to object fields, and each traced field exists in the rendered
// object with content.
func TestEveryWallMaps(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := input(t, tc.manifest, tc.has...)
			res, err := Render(in)
			if err != nil {
				t.Fatal(err)
			}
			traced := map[string][]Wall{}
			for _, w := range res.Walls {
				traced[w.Field] = append(traced[w.Field], w)
			}
			byName := map[string]map[string]any{}
			for _, o := range res.Objects {
				j, _ := JSON(o)
				var v map[string]any
				_ = json.Unmarshal(j, &v)
				byName[o.GVK().Kind+"/"+o.Meta().Name] = v
			}
			for _, s := range settings(in.Manifest, in.Agents) {
				ws := traced[s]
				if len(ws) == 0 {
					t.Errorf("%s: not mapped to any object field", s)
					continue
				}
				for _, w := range ws {
					obj := byName[w.Object]
					if obj == nil {
						t.Errorf("%s: traced to %s, which was not rendered", s, w.Object)
						continue
					}
					for _, p := range w.Paths {
						if v, ok := lookup(obj, p); !ok || isEmpty(v) {
							t.Errorf("%s: %s has nothing at %s", s, w.Object, p)
						}
					}
				}
			}
		})
	}
}

var stepRe = regexp.MustCompile(`^([A-Za-z]+)(?:\[(.+)\])?$`)

// lookup follows a dotted path; "name[key]" picks the list element whose
// name (containers) or mountPath (volumeMounts) is key.
func lookup(v any, path string) (any, bool) {
	for _, step := range splitPath(path) {
		m := stepRe.FindStringSubmatch(step)
		if m == nil {
			return nil, false
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		v, ok = obj[m[1]]
		if !ok {
			return nil, false
		}
		if m[2] != "" {
			list, ok := v.([]any)
			if !ok {
				return nil, false
			}
			var found any
			for _, e := range list {
				em, _ := e.(map[string]any)
				if em["name"] == m[2] || em["mountPath"] == m[2] {
					found = e
				}
			}
			if found == nil {
				return nil, false
			}
			v = found
		}
	}
	return v, true
}

// splitPath splits at dots outside brackets.
func splitPath(p string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range p {
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		case '.':
			if depth == 0 {
				out = append(out, p[start:i])
				start = i + 1
			}
		}
	}
	return append(out, p[start:])
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// TestWallValues checks what the walls render to, beyond their presence.
func TestWallValues(t *testing.T) {
	in := input(t, cases[1].manifest, cases[1].has...)
	res, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := Stream(res.Objects)
	for _, want := range []string{
		"cpu: 250m", "memory: 192Mi", // crawler's resources
		"cpu: 1500m", "memory: 1Gi", // notifier gets the defaults
		"values:\n                      - \"65\"", // pids 64: nodes with podPidsLimit < 65
		"type: RuntimeDefault",
		"- --allow\n            - api.example.com\n            - --allow\n            - '*.example.org'",
		"--subscribe-none", "--publish\n            - results.*",
		"mountPath: /app/prompts/system.txt\n              subPath: app/prompts/system.txt\n              readOnly: true",
		"claimName: crawler-out-reports", "storageClassName: fast-ssd", "- ReadWriteOncePod",
		"sizeLimit: 512Mi",
		"key: crawler", // the agent's own LLM token
		"crawler fast tokens_per_day=100000 dollars_per_day=0 requests_per_minute=30",
		"image: registry.internal:5000/node:20", "image: docker.io/library/python:3.12-slim",
		"cortex-nats.cortex-infra.svc:4222",
		"kind: Deployment\nmetadata:\n  name: crawler", // restart_policy always
		"restartPolicy: Never",                         // notifier: no
	} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("rendered objects lack %q", want)
		}
	}
	for _, o := range res.Objects {
		if o.Meta().Namespace != "" && o.Meta().Namespace != "walls-prod" {
			t.Errorf("%s/%s in namespace %s", o.GVK().Kind, o.Meta().Name, o.Meta().Namespace)
		}
	}
	// Every container of every pod is locked down.
	for _, o := range res.Objects {
		var spec *PodSpec
		switch w := o.(type) {
		case *Deployment:
			spec = &w.Spec.Template.Spec
		case *Job:
			spec = &w.Spec.Template.Spec
		default:
			continue
		}
		if spec.SecurityContext == nil || spec.SecurityContext.SeccompProfile == nil || !*spec.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: pod security context %+v", o.Meta().Name, spec.SecurityContext)
		}
		for _, c := range append(append([]Container(nil), spec.InitContainers...), spec.Containers...) {
			sc := c.SecurityContext
			if sc == nil || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
				t.Errorf("%s/%s: container security context %+v", o.Meta().Name, c.Name, sc)
			}
		}
	}
}

// TestUnmappable: what a cluster cannot enforce is refused, naming the
// setting and where it was written, and nothing is rendered.
func TestUnmappable(t *testing.T) {
	base := "version: \"1\"\nproject: p\nagents:\n  - name: a\n    runtime: python3.11\n    entrypoint: m:f\n"
	tests := []struct {
		name, yaml, kube string
		want             []string
	}{
		{"bus.broker", "version: \"1\"\nproject: p\nglobal_capabilities:\n  - bus.broker: \"redis://r:6379\"\nagents:\n  - name: a\n    runtime: python3.11\n    entrypoint: m:f\n", "",
			[]string{"cortex.yaml:4:5: global_capabilities.bus.broker: a broker bridge is not rendered"}},
		{"metrics", base + "    capabilities:\n      - observability.metrics: true\n", "",
			[]string{"cortex.yaml:8:9: agents[0].capabilities.observability.metrics:"}},
		{"strict logging", base + "    capabilities:\n      - security.logging: strict\n", "",
			[]string{"cortex.yaml:8:9: agents[0].capabilities.security.logging: strict logging"}},
		{"always with max_restarts", base + "    restart_policy: always\n    max_restarts: 4\n", "",
			[]string{"cortex.yaml:8:5: agents[0].max_restarts: restart_policy always runs as a Deployment"}},
		{"write without volume", base + "    capabilities:\n      - filesystem.write: [\"./out\", \"./logs\"]\n", "version: \"1\"\nvolumes:\n  a:\n    ./logs: {type: emptyDir}\n",
			[]string{"agents[0].capabilities.filesystem.write[0]: no volume declared for ./out; declare one in cortex.kube.yaml"}},
		{"read outside the bundle", base + "    capabilities:\n      - filesystem.read: [\"./big-data\"]\n", "",
			[]string{"agents[0].capabilities.filesystem.read[0]: ./big-data is not in the bundle"}},
		{"llm without llm_config", base + "    capabilities:\n      - llm.access: [fast]\n", "",
			[]string{"cortex.yaml:8:9: agents[0].capabilities.llm.access: the LLM gateway needs its configuration"}},
		{"unknown llm alias", base + "    capabilities:\n      - llm.access: [slow]\n", "version: \"1\"\nllm_config: llm.yaml\n",
			[]string{`alias "slow" is not in llm.yaml`}},
		{"several at once", base + "    capabilities:\n      - observability.metrics: true\n      - security.logging: strict\n", "",
			[]string{"observability.metrics", "security.logging"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_ = os.WriteFile(filepath.Join(dir, "cortex.yaml"), []byte(tc.yaml), 0o644)
			if tc.kube != "" {
				_ = os.WriteFile(filepath.Join(dir, ConfigFile), []byte(tc.kube), 0o644)
				_ = os.WriteFile(filepath.Join(dir, "llm.yaml"), []byte("aliases:\n  fast:\n    targets: [{provider: p, model: m}]\nproviders:\n  - {name: p, kind: openai, api_key_env: K}\n"), 0o644)
			}
			res, err := Render(input(t, filepath.Join(dir, "cortex.yaml")))
			var ue *UnmappableError
			if !errors.As(err, &ue) || !errdefs.IsInvalidArgument(err) || res != nil {
				t.Fatalf("Render = %v, %v; want an UnmappableError", res, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown field", "version: \"1\"\nregistyr: x\n", `cortex.kube.yaml:2:1: registyr: unknown field; did you mean "registry"?`},
		{"bad version", "version: \"2\"\n", `cortex.kube.yaml:1:10: version: "2" is not a version this build reads`},
		{"bad seccomp", "version: \"1\"\nseccomp: off\n", `cortex.kube.yaml:2:10: seccomp: "off" is not a seccomp mode`},
		{"pvc without size", "version: \"1\"\nvolumes:\n  a:\n    ./out: {type: pvc}\n", "volumes.a../out.size: a pvc needs a size"},
		{"bad volume type", "version: \"1\"\nvolumes:\n  a:\n    ./out: {type: hostPath}\n", `cortex.kube.yaml:4:19: volumes.a../out.type: "hostPath" is not a volume type`},
		{"bad size", "version: \"1\"\nvolumes:\n  a:\n    ./out: {type: emptyDir, size: 2GB}\n", `"2GB" is not a quantity`},
		{"unknown runtime", "version: \"1\"\nimages:\n  runtimes:\n    python3.9: x\n", "images.runtimes.python3.9: unknown runtime"},
		{"registry and bundle", "version: \"1\"\nregistry: a.b/c\nbundle: a.b/c@sha256:00\n", "both registry and bundle are set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml), ConfigFile)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("ParseConfig = %v\nwant an invalid argument containing %q", err, tc.want)
			}
		})
	}
	// Volumes are checked against the manifest at render time.
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "cortex.yaml"), []byte("version: \"1\"\nproject: p\nagents:\n  - name: a\n    runtime: python3.11\n    entrypoint: m:f\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, ConfigFile), []byte("version: \"1\"\nvolumes:\n  b:\n    ./out: {type: emptyDir}\n  a:\n    ./x: {type: emptyDir}\n"), 0o644)
	_, err := Render(input(t, filepath.Join(dir, "cortex.yaml")))
	for _, want := range []string{":3:3: volumes.b: no agent of that name", ":6:5: volumes.a../x: the agent has no filesystem.write grant ./x"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("render with stray volumes: %v; want %q", err, want)
		}
	}
}

// FuzzParseConfig: the config parser never panics, and what it accepts
// renders or fails with an error, never a panic.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"version: \"1\"\n", "version: \"1\"\nvolumes:\n  a:\n    ./o: {type: pvc, size: 1Gi}\n", "version: \"1\"\nimages: {runtimes: {python3.11: x}}\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfig([]byte(s), ConfigFile)
		if err != nil {
			return
		}
		keys := sortedKeys(c.Volumes)
		sort.Strings(keys)
		_ = c.node("volumes")
	})
}
