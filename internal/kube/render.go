package kube

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/manifest"
)

// Where things live inside an agent pod: the same paths as in a sandbox
// on one node.
const (
	AppDir    = "/app"
	ShareDir  = "/opt/cortex"
	BusDir    = "/run/cortex"
	BusSocket = BusDir + "/bus.sock"

	// AgentUID runs every container of an agent pod (nonroot).
	AgentUID = 65532

	// Ports of the per-agent egress gateway and the LLM gateway.
	ProxyPort = 3128
	NATSPort  = 4222
	LLMPort   = 8080

	// SeccompDir is where the chart's DaemonSet installs profiles, under
	// the kubelet's seccomp root (/var/lib/kubelet/seccomp).
	SeccompDir = "cortex"

	// Secrets the operator (or cortex deploy) provides; never rendered.
	SecretRegistryAuth = "cortex-registry-auth" // optional: a .dockerconfigjson for the bundle registry
	SecretBusToken     = "cortex-bus"           // key "token": the NATS token of the cluster's bus
	SecretLLMKeys      = "cortex-llm-keys"      // provider keys: each key an environment variable the LLM config's api_key_env names
	SecretLLMTokens    = "cortex-llm-tokens"    // one key per agent: its token for the LLM gateway
	ConfigRegistryCA   = "cortex-registry-ca"   // optional: key ca.crt, the bundle registry's CA

	// Labels on everything Cortex renders.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelProject   = "cortex.dev/project"
	LabelAgent     = "cortex.dev/agent"
	LabelRole      = "cortex.dev/role"
	// LabelPidsLimit is the node label an operator sets to the kubelet's
	// podPidsLimit; agents with a pids ceiling only schedule on nodes whose
	// limit is at most theirs.
	LabelPidsLimit = "cortex.dev/pod-pids-limit"
)

// Input is what Render needs.
type Input struct {
	Manifest *manifest.Manifest
	// Agents are the manifest's agents resolved against built-in defaults.
	Agents []manifest.ResolvedAgent
	// Bundle is the bundle's registry reference, pinned by digest.
	Bundle string
	// BundleHas reports whether the bundle holds path (slash-separated,
	// clean, relative) as a directory or file.
	BundleHas func(path string) bool
	Config    *Config
	// VerifyKey is the PEM of Config.VerifyKey, when set.
	VerifyKey []byte
	// Version is cortex's version, the default image tag.
	Version string
	// LLMConfig is the LLM gateway's configuration (Config.LLMConfig's
	// content, validated by the caller) and LLMAliases its alias names.
	LLMConfig  []byte
	LLMAliases []string
}

// Result is the rendered objects, in the order they are applied, and the
// trace of where every wall of the manifest went.
type Result struct {
	Namespace string
	Objects   []Object
	Walls     []Wall
}

// Wall records one manifest setting and the object fields that enforce
// it on the cluster.
type Wall struct {
	Field  string   // manifest field path: agents[0].capabilities.network.access
	Agent  string   // "" for project-wide settings
	Object string   // Kind/name
	Paths  []string // field paths in Object (JSON names)
	How    string   // one line for docs and errors
}

// UnmappableError lists the manifest settings a cluster cannot enforce.
type UnmappableError struct {
	Source   string
	Problems []Problem
}

// Problem is one setting that does not map.
type Problem struct {
	Field, Msg, Fix string
	Line, Col       int
}

func (e *UnmappableError) Error() string {
	var lines []string
	for _, p := range e.Problems {
		loc := e.Source
		if p.Line > 0 {
			loc += ":" + strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Col)
		}
		s := loc + ": " + p.Field + ": " + p.Msg
		if p.Fix != "" {
			s += "; " + p.Fix
		}
		lines = append(lines, s)
	}
	return "cannot render for Kubernetes:\n" + strings.Join(lines, "\n")
}

// Unwrap makes it an invalid argument (exit code 2).
func (e *UnmappableError) Unwrap() error {
	return &errdefs.Error{Cat: errdefs.InvalidArgument, Msg: "unmappable manifest"}
}

type renderer struct {
	in      Input
	m       *manifest.Manifest
	cfg     *Config
	ns      string
	res     Result
	probs   []Problem
	llm     bool // some agent uses the LLM gateway
	cfgErrs []error
}

// Render turns a manifest into Kubernetes objects. Every setting of the
// manifest maps to object fields (recorded in Result.Walls); one that
// cannot is an UnmappableError naming it, and nothing is returned.
func Render(in Input) (*Result, error) {
	if in.Config == nil {
		in.Config = DefaultConfig()
	}
	r := &renderer{in: in, m: in.Manifest, cfg: in.Config}
	r.ns = r.cfg.Namespace
	if r.ns == "" {
		r.ns = "cortex-" + r.m.Project
		if len(r.ns) > 63 {
			r.fail("project", fmt.Sprintf("namespace %q is longer than 63 characters", r.ns), "set namespace: in "+ConfigFile)
		}
	}
	r.res.Namespace = r.ns
	if in.Bundle == "" {
		r.fail("", "no bundle reference", "push the bundle (cortex push) and set registry: or bundle: in "+ConfigFile+", or pass --bundle REF@DIGEST")
	}
	r.checkConfig()
	r.project()
	// The LLM gateway's Service comes before the pods that find it
	// through service-link variables.
	for _, a := range in.Agents {
		r.llm = r.llm || len(a.Capabilities.LLMAccess) > 0
	}
	if r.llm {
		r.llmGateway()
	}
	for i, a := range in.Agents {
		r.agent(i, a)
	}
	if len(r.probs) > 0 || len(r.cfgErrs) > 0 {
		if len(r.cfgErrs) > 0 {
			return nil, errors.Join(r.cfgErrs...)
		}
		return nil, &UnmappableError{Source: r.m.Source, Problems: r.probs}
	}
	return &r.res, nil
}

// fail records an unmappable setting at a manifest field.
func (r *renderer) fail(field, msg, fix string) {
	p := Problem{Field: field, Msg: msg, Fix: fix}
	if pos := r.m.Pos(field); pos.Line > 0 {
		p.Line, p.Col = pos.Line, pos.Col
	}
	r.probs = append(r.probs, p)
}

func (r *renderer) wall(field, agent string, o Object, how string, paths ...string) {
	r.res.Walls = append(r.res.Walls, Wall{Field: field, Agent: agent, Object: o.GVK().Kind + "/" + o.Meta().Name, Paths: paths, How: how})
}

func (r *renderer) add(o Object) Object {
	m := o.Meta()
	if o.GVK().Namespaced {
		m.Namespace = r.ns
	}
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[LabelManagedBy] = "cortex"
	m.Labels[LabelProject] = r.m.Project
	r.res.Objects = append(r.res.Objects, o)
	return o
}

func meta(gvk GVK) TypeMeta { return TypeMeta{APIVersion: gvk.APIVersion(), Kind: gvk.Kind} }

// checkConfig checks cortex.kube.yaml against the manifest: every volume
// names an agent's write grant.
func (r *renderer) checkConfig() {
	writes := map[string]map[string]bool{}
	for _, a := range r.in.Agents {
		writes[a.Name] = map[string]bool{}
		for _, p := range a.Capabilities.FilesystemWrite {
			writes[a.Name][cleanGrant(p)] = true
		}
	}
	for _, agent := range sortedKeys(r.cfg.Volumes) {
		w, ok := writes[agent]
		if !ok {
			r.cfgErrs = append(r.cfgErrs, r.cfg.errAt("volumes."+agent, "no agent of that name in "+r.m.Source, "volumes are keyed by agent name"))
			continue
		}
		for _, p := range sortedKeys(r.cfg.Volumes[agent]) {
			if !w[cleanGrant(p)] {
				r.cfgErrs = append(r.cfgErrs, r.cfg.errAt("volumes."+agent+"."+p, "the agent has no filesystem.write grant "+p,
					"volumes back the agent's filesystem.write paths, written as in the manifest"))
			}
		}
	}
}

func cleanGrant(p string) string { return path.Clean(strings.TrimPrefix(p, "./")) }

// project renders the namespace and what every agent shares.
func (r *renderer) project() {
	ns := &Namespace{TypeMeta: meta(gvkNamespace), Metadata: ObjectMeta{Name: r.ns, Labels: map[string]string{
		// Pod Security Admission: the API server itself refuses pods that
		// are not "restricted" (non-root, no privilege escalation, all
		// capabilities dropped, a seccomp profile).
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
		"pod-security.kubernetes.io/audit":   "restricted",
	}}}
	r.add(ns)
	r.add(&ServiceAccount{TypeMeta: meta(gvkServiceAccount), Metadata: ObjectMeta{Name: "cortex-agent"}, AutomountServiceAccountToken: ptr(false)})
	if len(r.in.VerifyKey) > 0 {
		r.add(&ConfigMap{TypeMeta: meta(gvkConfigMap), Metadata: ObjectMeta{Name: "cortex-verify-key"}, Data: map[string]string{"key.pub": string(r.in.VerifyKey)}})
	}
	// Nothing reaches or leaves any pod of the project unless a policy
	// below allows it.
	r.add(&NetworkPolicy{TypeMeta: meta(gvkNetworkPolicy), Metadata: ObjectMeta{Name: "default-deny"},
		Spec: NetworkPolicySpec{PolicyTypes: []string{"Ingress", "Egress"}}})
	g := r.m.GlobalCapabilities
	if g.BusBroker != "" {
		r.fail("global_capabilities."+manifest.CapBusBroker,
			"a broker bridge is not rendered: on Kubernetes every pod of the project already shares the cluster's NATS (JetStream), so channels cross nodes without it",
			"remove bus.broker for cluster deployments, or run the project on a node")
	}
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// envName is the service-link variable prefix of a Service.
func envName(service string) string {
	return strings.ToUpper(strings.ReplaceAll(service, "-", "_"))
}

// agent renders one agent: its workload, egress gateway, policies and
// volumes.
func (r *renderer) agent(i int, a manifest.ResolvedAgent) {
	at := func(f string) string { return fmt.Sprintf("agents[%d].%s", i, f) }
	capAt := func(name string) string { return at("capabilities." + name) }
	gw := "egress-" + a.Name
	if len(gw) > 63 {
		r.fail(at("name"), fmt.Sprintf("%q is too long for a Kubernetes service name (egress-%s must be at most 63 characters)", a.Name, a.Name), "use an agent name of at most 56 characters")
		return
	}
	labels := map[string]string{LabelProject: r.m.Project, LabelAgent: a.Name, LabelRole: "agent"}
	gwLabels := map[string]string{LabelProject: r.m.Project, LabelAgent: a.Name, LabelRole: "egress-gateway"}
	gwEnv := envName(gw)
	caps := a.Capabilities

	// Capabilities the cluster cannot enforce.
	if caps.Metrics {
		r.fail(capAt(manifest.CapMetrics), "agent metrics are not rendered for Kubernetes", "remove observability.metrics for cluster deployments")
	}
	if caps.Logging == manifest.LoggingStrict {
		r.fail(capAt(manifest.CapLogging), "strict logging wraps non-JSON output in the daemon's log collector; on Kubernetes the container runtime collects output unwrapped",
			"remove security.logging: strict for cluster deployments, or run the project on a node")
	}
	if a.RestartPolicy == manifest.RestartAlways && r.maxRestartsWritten(i) {
		r.fail(r.maxRestartsField(i), fmt.Sprintf("restart_policy always runs as a Deployment, which restarts without limit; max_restarts %d cannot be kept", a.MaxRestarts),
			"remove max_restarts for this agent, or use restart_policy on-failure (a Job with backoffLimit)")
	}

	// Volumes: the bundle, the shims and SDK, /tmp, the bus socket.
	vols := []Volume{
		{Name: "app", EmptyDir: &EmptyDir{}},
		{Name: "share", EmptyDir: &EmptyDir{SizeLimit: "16Mi"}},
		{Name: "tmp", EmptyDir: &EmptyDir{Medium: "Memory", SizeLimit: "64Mi"}},
		{Name: "bus", EmptyDir: &EmptyDir{Medium: "Memory", SizeLimit: "1Mi"}},
		{Name: "registry-auth", Secret: &SecretVolume{SecretName: SecretRegistryAuth, Optional: ptr(true), Items: []KeyToPath{{Key: ".dockerconfigjson", Path: "config.json"}}}},
	}
	// The fetch container unpacks the bundle to app/ of the volume; the
	// agent sees that sub-path read-only at /app.
	mounts := []VolumeMount{
		{Name: "app", MountPath: AppDir, SubPath: "app", ReadOnly: true},
		{Name: "share", MountPath: ShareDir, ReadOnly: true},
		{Name: "tmp", MountPath: "/tmp"},
		{Name: "bus", MountPath: BusDir},
	}
	fetchMounts := []VolumeMount{{Name: "app", MountPath: "/work"}, {Name: "share", MountPath: "/share"}, {Name: "registry-auth", MountPath: "/etc/cortex/registry", ReadOnly: true}}
	fetchArgs := []string{"--bundle", r.in.Bundle, "--dir", "/work", "--share", "/share"}
	if reg, _, ok := strings.Cut(r.in.Bundle, "/"); ok {
		vols = append(vols, Volume{Name: "registry-ca", ConfigMap: &ConfigMapVolume{Name: ConfigRegistryCA, Optional: ptr(true), Items: []KeyToPath{{Key: "ca.crt", Path: reg + "/ca.crt"}}}})
		fetchMounts = append(fetchMounts, VolumeMount{Name: "registry-ca", MountPath: "/etc/docker/certs.d", ReadOnly: true})
	}
	if len(r.in.VerifyKey) > 0 {
		vols = append(vols, Volume{Name: "verify-key", ConfigMap: &ConfigMapVolume{Name: "cortex-verify-key"}})
		fetchMounts = append(fetchMounts, VolumeMount{Name: "verify-key", MountPath: "/etc/cortex/verify", ReadOnly: true})
		fetchArgs = append(fetchArgs, "--verify-key", "/etc/cortex/verify/key.pub")
	}

	// filesystem.read: the bundle's own files, read-only under /app. A
	// cluster has no project directory, so the path must be in the bundle.
	for j, p := range caps.FilesystemRead {
		c := cleanGrant(p)
		if r.in.BundleHas != nil && !r.in.BundleHas(c) {
			r.fail(fmt.Sprintf("%s[%d]", capAt(manifest.CapFilesystemRead), j), fmt.Sprintf("./%s is not in the bundle; on Kubernetes the bundle is the only source of read grants", c),
				"bundle it (check .cortexignore) or drop the grant")
			continue
		}
		mounts = append(mounts, VolumeMount{Name: "app", MountPath: AppDir + "/" + c, SubPath: "app/" + c, ReadOnly: true})
	}
	// filesystem.write: the volume cortex.kube.yaml declares.
	var pvcs []*PersistentVolumeClaim
	for j, p := range caps.FilesystemWrite {
		c := cleanGrant(p)
		field := fmt.Sprintf("%s[%d]", capAt(manifest.CapFilesystemWrite), j)
		v, ok := r.volumeFor(a.Name, p)
		if !ok {
			r.fail(field, fmt.Sprintf("no volume declared for ./%s", c),
				fmt.Sprintf("declare one in %s: volumes: {%s: {\"./%s\": {type: pvc, size: 1Gi}}} (or type: emptyDir for scratch space)", ConfigFile, a.Name, c))
			continue
		}
		name := "w-" + strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(c), "-"), "-")
		if name == "w-" {
			name = "w-root"
		}
		fetchArgs = append(fetchArgs, "--mountpoint", c)
		mounts = append(mounts, VolumeMount{Name: name, MountPath: AppDir + "/" + c})
		switch v.Type {
		case "pvc":
			claim := a.Name + "-" + strings.TrimPrefix(name, "w-")
			mode := v.AccessMode
			if mode == "" {
				mode = "ReadWriteOnce"
			}
			pvc := &PersistentVolumeClaim{TypeMeta: meta(gvkPVC), Metadata: ObjectMeta{Name: claim, Labels: map[string]string{LabelAgent: a.Name}},
				Spec: PVCSpec{AccessModes: []string{mode}, Resources: VolumeResourceLimits{Requests: map[string]string{"storage": v.Size}}}}
			if v.StorageClass != "" {
				pvc.Spec.StorageClassName = ptr(v.StorageClass)
			}
			pvcs = append(pvcs, pvc)
			vols = append(vols, Volume{Name: name, PersistentVolumeClaim: &PVCVolume{ClaimName: claim}})
		default:
			vols = append(vols, Volume{Name: name, EmptyDir: &EmptyDir{SizeLimit: v.Size}})
		}
	}

	// The agent's environment, as on a node.
	env := []EnvVar{
		{Name: "LANG", Value: "C.UTF-8"},
		{Name: "PYTHONUNBUFFERED", Value: "1"},
		{Name: "PYTHONDONTWRITEBYTECODE", Value: "1"},
		{Name: "HOME", Value: "/tmp"},
		{Name: "TMPDIR", Value: "/tmp"},
		{Name: "PYTHONPATH", Value: ShareDir + "/sdk/python"},
		{Name: "NODE_PATH", Value: ShareDir + "/sdk/node"},
		{Name: "CORTEX_PROJECT", Value: r.m.Project},
		{Name: "CORTEX_AGENT", Value: a.Name},
		{Name: "CORTEX_RUN", Value: "0"},
		{Name: "CORTEX_BUS", Value: BusSocket},
	}
	proxy := "http://$(" + gwEnv + "_SERVICE_HOST):$(" + gwEnv + "_SERVICE_PORT_PROXY)"
	if len(caps.NetworkAccess) > 0 {
		noProxy := "localhost,127.0.0.1"
		if len(caps.LLMAccess) > 0 {
			noProxy += ",$(CORTEX_LLM_SERVICE_HOST)"
		}
		for _, n := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
			env = append(env, EnvVar{Name: n, Value: proxy})
		}
		env = append(env, EnvVar{Name: "NO_PROXY", Value: noProxy}, EnvVar{Name: "no_proxy", Value: noProxy})
	}
	if len(caps.LLMAccess) > 0 {
		if r.in.LLMConfig == nil {
			r.fail(capAt(manifest.CapLLMAccess), "the LLM gateway needs its configuration on Kubernetes",
				"set llm_config: FILE in "+ConfigFile+" (the llm: section of a daemon config, keys as api_key_env)")
		}
		for _, al := range caps.LLMAccess {
			if r.in.LLMConfig != nil && !contains(r.in.LLMAliases, al) {
				r.fail(capAt(manifest.CapLLMAccess), fmt.Sprintf("alias %q is not in %s", al, r.cfg.LLMConfig), "add it under aliases: there, or use one of: "+strings.Join(r.in.LLMAliases, ", "))
			}
		}
		base := "http://$(CORTEX_LLM_SERVICE_HOST):$(CORTEX_LLM_SERVICE_PORT)"
		tok := &EnvVarSource{SecretKeyRef: &KeySelector{Name: SecretLLMTokens, Key: a.Name}}
		env = append(env,
			EnvVar{Name: "OPENAI_BASE_URL", Value: base + "/v1"}, EnvVar{Name: "OPENAI_API_KEY", ValueFrom: tok},
			EnvVar{Name: "ANTHROPIC_BASE_URL", Value: base}, EnvVar{Name: "ANTHROPIC_API_KEY", ValueFrom: tok})
	}
	for _, e := range a.Env {
		env = append(env, EnvVar{Name: e.Name, Value: e.Value})
	}

	var argv []string
	rt := a.Runtime
	image := r.cfg.Images.Runtimes[rt]
	if cands, _ := manifest.RuntimeCandidates(rt); image == "" && manifest.IsRuntimeRange(rt) && len(cands) > 0 {
		// A range ("python>=3.10") runs on the image of its newest known
		// runtime: the cluster has no host interpreter to pick from.
		rt = cands[0]
		image = r.cfg.Images.Runtimes[rt]
	}
	if manifest.IsPython(rt) {
		argv = []string{"python3", "-s", "-u", "-B", ShareDir + "/shims/bootstrap.py", a.Entrypoint}
		if image == "" {
			image = "docker.io/library/python:" + strings.TrimPrefix(rt, "python") + "-slim"
		}
	} else {
		argv = []string{"node", ShareDir + "/shims/bootstrap.js", a.Entrypoint}
		if image == "" {
			image = "docker.io/library/node:" + strings.TrimPrefix(rt, "nodejs") + "-slim"
		}
	}
	agentC := Container{
		Name: "agent", Image: image, Command: argv, WorkingDir: AppDir, Env: env,
		Resources:       &Resources{Limits: limits(a.Limits), Requests: limits(a.Limits)},
		VolumeMounts:    mounts,
		SecurityContext: restricted(),
	}
	fetch := Container{
		Name: "fetch", Image: r.cortexImage(), Command: []string{"cortexd", "cluster", "fetch"}, Args: fetchArgs,
		Env: []EnvVar{
			{Name: "HTTPS_PROXY", Value: proxy}, {Name: "HTTP_PROXY", Value: proxy},
			{Name: "DOCKER_CONFIG", Value: "/etc/cortex/registry"},
		},
		Resources:       smallResources("100m", "64Mi", "1", "256Mi"),
		VolumeMounts:    fetchMounts,
		SecurityContext: restricted(),
	}
	busArgs := []string{"--nats", "nats://$(" + gwEnv + "_SERVICE_HOST):$(" + gwEnv + "_SERVICE_PORT_NATS)",
		"--project", r.m.Project, "--agent", a.Name, "--socket", BusSocket}
	busArgs = append(busArgs, aclArgs("--publish", caps.BusPublish)...)
	busArgs = append(busArgs, aclArgs("--subscribe", caps.BusSubscribe)...)
	for _, d := range caps.BusDurable {
		busArgs = append(busArgs, "--durable", d)
	}
	bus := Container{
		Name: "bus", Image: r.cortexImage(), RestartPolicy: "Always", Command: []string{"cortexd", "cluster", "bus-sidecar"}, Args: busArgs,
		Env:             []EnvVar{{Name: "CORTEX_NATS_TOKEN", ValueFrom: &EnvVarSource{SecretKeyRef: &KeySelector{Name: SecretBusToken, Key: "token"}}}},
		Resources:       smallResources("50m", "32Mi", "500m", "128Mi"),
		VolumeMounts:    []VolumeMount{{Name: "bus", MountPath: BusDir}},
		SecurityContext: restricted(),
	}
	pod := PodSpec{
		ServiceAccountName:           "cortex-agent",
		AutomountServiceAccountToken: ptr(false),
		EnableServiceLinks:           ptr(true),
		// No resolver: agents reach only their gateway, by the address
		// Kubernetes puts in the service-link variables; names are resolved
		// by the gateway against the allowlist (no DNS tunnelling).
		DNSPolicy:       "None",
		DNSConfig:       &PodDNSConfig{Nameservers: []string{"127.0.0.1"}},
		SecurityContext: r.podSecurity(),
		InitContainers:  []Container{fetch, bus},
		Containers:      []Container{agentC},
		Volumes:         vols,
	}
	if a.Limits.Pids > 0 {
		pod.Affinity = &Affinity{NodeAffinity: &NodeAffinity{Required: &NodeSelector{Terms: []NodeSelectorTerm{{MatchExpressions: []NodeSelectorRequirement{
			{Key: LabelPidsLimit, Operator: "Lt", Values: []string{strconv.FormatInt(a.Limits.Pids+1, 10)}},
		}}}}}}
	}
	tmpl := PodTemplateSpec{Metadata: ObjectMeta{Labels: labels}, Spec: pod}

	// Objects, in apply order: claims, the gateway, the policies, the
	// workload (its pods need the gateway's service-link variables).
	for _, pvc := range pvcs {
		r.add(pvc)
	}
	svc := r.add(&Service{TypeMeta: meta(gvkService), Metadata: ObjectMeta{Name: gw, Labels: map[string]string{LabelAgent: a.Name, LabelRole: "egress-gateway"}},
		Spec: ServiceSpec{Selector: gwLabels, Ports: []ServicePort{
			{Name: "proxy", Protocol: "TCP", Port: ProxyPort, TargetPort: ProxyPort},
			{Name: "nats", Protocol: "TCP", Port: NATSPort, TargetPort: NATSPort},
		}}})
	_ = svc
	gwArgs := []string{"--listen", fmt.Sprintf(":%d", ProxyPort), "--forward", fmt.Sprintf(":%d=cortex-nats.%s.svc:%d", NATSPort, r.cfg.SystemNamespace, NATSPort)}
	for _, n := range caps.NetworkAccess {
		gwArgs = append(gwArgs, "--allow", n)
	}
	if reg, _, ok := strings.Cut(r.in.Bundle, "/"); ok {
		gwArgs = append(gwArgs, "--registry", reg)
	}
	gwDep := r.add(&Deployment{TypeMeta: meta(gvkDeployment), Metadata: ObjectMeta{Name: gw, Labels: map[string]string{LabelAgent: a.Name, LabelRole: "egress-gateway"}},
		Spec: DeploymentSpec{Replicas: ptr(int32(1)), Selector: LabelSelector{MatchLabels: gwLabels}, Strategy: DeploymentStrategy{Type: "RollingUpdate"},
			Template: PodTemplateSpec{Metadata: ObjectMeta{Labels: gwLabels}, Spec: PodSpec{
				ServiceAccountName: "cortex-agent", AutomountServiceAccountToken: ptr(false), EnableServiceLinks: ptr(false),
				RestartPolicy: "Always", SecurityContext: r.podSecurity(),
				Containers: []Container{{
					Name: "gateway", Image: r.cortexImage(), Command: []string{"cortexd", "cluster", "egress-gateway"}, Args: gwArgs,
					Ports:           []ContainerPort{{Name: "proxy", ContainerPort: ProxyPort, Protocol: "TCP"}, {Name: "nats", ContainerPort: NATSPort, Protocol: "TCP"}},
					Resources:       smallResources("50m", "32Mi", "1", "128Mi"),
					SecurityContext: restricted(),
				}},
			}}}})
	gwPol := r.add(&NetworkPolicy{TypeMeta: meta(gvkNetworkPolicy), Metadata: ObjectMeta{Name: gw, Labels: map[string]string{LabelAgent: a.Name}},
		Spec: NetworkPolicySpec{PodSelector: LabelSelector{MatchLabels: gwLabels}, PolicyTypes: []string{"Ingress", "Egress"},
			Ingress: []NPRule{{From: []NPPeer{{PodSelector: &LabelSelector{MatchLabels: labels}}}, Ports: []NPPort{{Protocol: "TCP", Port: ProxyPort}, {Protocol: "TCP", Port: NATSPort}}}},
			// The gateway itself decides what it dials: allowed names only,
			// never private addresses (except the registry and NATS, which
			// the operator configured).
			Egress: []NPRule{{}},
		}})
	agentEgress := []NPRule{{To: []NPPeer{{PodSelector: &LabelSelector{MatchLabels: gwLabels}}}, Ports: []NPPort{{Protocol: "TCP", Port: ProxyPort}, {Protocol: "TCP", Port: NATSPort}}}}
	if len(caps.LLMAccess) > 0 {
		agentEgress = append(agentEgress, NPRule{To: []NPPeer{{PodSelector: &LabelSelector{MatchLabels: map[string]string{LabelProject: r.m.Project, LabelRole: "llm-gateway"}}}}, Ports: []NPPort{{Protocol: "TCP", Port: LLMPort}}})
	}
	agentPol := r.add(&NetworkPolicy{TypeMeta: meta(gvkNetworkPolicy), Metadata: ObjectMeta{Name: "agent-" + a.Name, Labels: map[string]string{LabelAgent: a.Name}},
		Spec: NetworkPolicySpec{PodSelector: LabelSelector{MatchLabels: labels}, PolicyTypes: []string{"Ingress", "Egress"}, Egress: agentEgress}})

	var work Object
	kind := "Deployment"
	switch a.RestartPolicy {
	case manifest.RestartAlways:
		tmpl.Spec.RestartPolicy = "Always"
		work = &Deployment{TypeMeta: meta(gvkDeployment), Metadata: ObjectMeta{Name: a.Name, Labels: map[string]string{LabelAgent: a.Name, LabelRole: "agent"}},
			Spec: DeploymentSpec{Replicas: ptr(int32(1)), Selector: LabelSelector{MatchLabels: labels}, Strategy: DeploymentStrategy{Type: "Recreate"}, Template: tmpl}}
	case manifest.RestartOnFailure:
		kind = "Job"
		tmpl.Spec.RestartPolicy = "OnFailure"
		work = &Job{TypeMeta: meta(gvkJob), Metadata: ObjectMeta{Name: a.Name, Labels: map[string]string{LabelAgent: a.Name, LabelRole: "agent"}},
			Spec: JobSpec{BackoffLimit: ptr(int32(min(a.MaxRestarts, 1<<30))), Template: tmpl}}
	default:
		kind = "Job"
		tmpl.Spec.RestartPolicy = "Never"
		work = &Job{TypeMeta: meta(gvkJob), Metadata: ObjectMeta{Name: a.Name, Labels: map[string]string{LabelAgent: a.Name, LabelRole: "agent"}},
			Spec: JobSpec{BackoffLimit: ptr(int32(0)), Template: tmpl}}
	}
	r.add(work)

	// The trace: every setting of the agent and the fields enforcing it.
	pp := "spec.template.spec."
	ag := pp + "containers[agent]."
	r.wall(at("runtime"), a.Name, work, "the runtime's image runs the interpreter", ag+"image")
	r.wall(at("entrypoint"), a.Name, work, "the bootstrap shim imports the entrypoint", ag+"command")
	r.wall(at("restart_policy"), a.Name, work, fmt.Sprintf("%s with restartPolicy %s", kind, tmpl.Spec.RestartPolicy), pp+"restartPolicy")
	if kind == "Job" {
		r.wall(at("max_restarts"), a.Name, work, "Job backoffLimit", "spec.backoffLimit")
	}
	r.wall(at("resources.cpu_limit"), a.Name, work, "CPU limit = request", ag+"resources.limits.cpu", ag+"resources.requests.cpu")
	r.wall(at("resources.mem_limit"), a.Name, work, "memory limit = request (the kernel OOM-kills above it)", ag+"resources.limits.memory", ag+"resources.requests.memory")
	if a.Limits.Pids > 0 {
		r.wall(at("resources.pids_limit"), a.Name, work, "only nodes whose kubelet podPidsLimit (label "+LabelPidsLimit+") is at most the agent's", pp+"affinity.nodeAffinity")
	}
	r.wall(at("filesystem"), a.Name, work, "read-only root; the bundle read-only at /app; private /tmp", ag+"securityContext.readOnlyRootFilesystem", ag+"volumeMounts[/app]")
	for j := range caps.FilesystemRead {
		r.wall(fmt.Sprintf("%s[%d]", capAt(manifest.CapFilesystemRead), j), a.Name, work, "read-only sub-path of the bundle", ag+"volumeMounts["+AppDir+"/"+cleanGrant(caps.FilesystemRead[j])+"]")
	}
	for j := range caps.FilesystemWrite {
		r.wall(fmt.Sprintf("%s[%d]", capAt(manifest.CapFilesystemWrite), j), a.Name, work, "the declared volume, writable", ag+"volumeMounts["+AppDir+"/"+cleanGrant(caps.FilesystemWrite[j])+"]")
	}
	sec := "the same seccomp filter as a Localhost profile"
	if r.cfg.Seccomp == SeccompRuntimeDefault {
		sec = "the runtime's default seccomp profile"
	}
	r.wall(at("syscalls"), a.Name, work, sec+"; all capabilities dropped; non-root; no privilege escalation",
		pp+"securityContext.seccompProfile", ag+"securityContext.capabilities.drop", ag+"securityContext.allowPrivilegeEscalation", pp+"securityContext.runAsNonRoot")
	r.wall(at("network"), a.Name, agentPol, "default-deny; only the agent's egress gateway is reachable; no DNS", "spec.egress", "spec.policyTypes")
	if len(caps.NetworkAccess) > 0 {
		r.wall(capAt(manifest.CapNetworkAccess), a.Name, gwDep, "the egress gateway's allowlist (proxy variables point the agent at it)", "spec.template.spec.containers[gateway].args")
	}
	r.wall(at("bus"), a.Name, work, "the bus sidecar serves "+BusSocket+" and bridges to the cluster's NATS", pp+"initContainers[bus]")
	for _, c := range []struct {
		name string
		set  bool
	}{{manifest.CapBusPublish, caps.BusPublish != nil}, {manifest.CapBusSubscribe, caps.BusSubscribe != nil}, {manifest.CapBusDurable, len(caps.BusDurable) > 0}} {
		if c.set {
			r.wall(capAt(c.name), a.Name, work, "bus sidecar ACL flags", pp+"initContainers[bus].args")
		}
	}
	if len(caps.LLMAccess) > 0 {
		r.wall(capAt(manifest.CapLLMAccess), a.Name, agentPol, "egress to the LLM gateway; the agent's own token from a Secret", "spec.egress")
	}
	if caps.LLMBudget != nil {
		r.wall(capAt(manifest.CapLLMBudget), a.Name, &ConfigMap{TypeMeta: meta(gvkConfigMap), Metadata: ObjectMeta{Name: "cortex-llm-agents"}}, "the LLM gateway's agent list (budget)", "data.agents")
	}
	for j, e := range a.Env {
		r.wall(fmt.Sprintf("%s[%d]", at("env"), j), a.Name, work, "container env "+e.Name, ag+"env")
	}
	_ = gwPol
}

// maxRestartsWritten reports whether max_restarts was written for agent i
// (on the agent or in defaults), not taken from built-in defaults.
func (r *renderer) maxRestartsWritten(i int) bool {
	return r.m.Agents[i].MaxRestarts != nil || r.m.Defaults.MaxRestarts != nil
}

func (r *renderer) maxRestartsField(i int) string {
	if r.m.Agents[i].MaxRestarts != nil {
		return fmt.Sprintf("agents[%d].max_restarts", i)
	}
	return "defaults.max_restarts"
}

func (r *renderer) volumeFor(agent, p string) (VolumeConfig, bool) {
	for k, v := range r.cfg.Volumes[agent] {
		if cleanGrant(k) == cleanGrant(p) {
			return v, true
		}
	}
	return VolumeConfig{}, false
}

func aclArgs(flag string, acl []string) []string {
	if acl == nil {
		return nil // every channel of the project
	}
	if len(acl) == 0 {
		return []string{flag + "-none"}
	}
	var out []string
	for _, p := range acl {
		out = append(out, flag, p)
	}
	return out
}

func (r *renderer) cortexImage() string {
	if r.cfg.Images.Cortex != "" {
		return r.cfg.Images.Cortex
	}
	v := r.in.Version
	if v == "" {
		v = "latest"
	}
	return "ghcr.io/cortexrt/cortex:" + v
}

func (r *renderer) podSecurity() *PodSecurityContext {
	sp := &SeccompProfile{Type: "Localhost", LocalhostProfile: SeccompProfilePath()}
	if r.cfg.Seccomp == SeccompRuntimeDefault {
		sp = &SeccompProfile{Type: "RuntimeDefault"}
	}
	return &PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(AgentUID)), RunAsGroup: ptr(int64(AgentUID)), FSGroup: ptr(int64(AgentUID)), SeccompProfile: sp}
}

// restricted is every container's security context: Pod Security
// "restricted" and a read-only root.
func restricted() *ContainerSecurityCtx {
	return &ContainerSecurityCtx{
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		RunAsNonRoot:             ptr(true),
		Privileged:               ptr(false),
		Capabilities:             &Capabilities{Drop: []string{"ALL"}},
	}
}

func smallResources(cpuReq, memReq, cpuLim, memLim string) *Resources {
	return &Resources{
		Requests: map[string]string{"cpu": cpuReq, "memory": memReq},
		Limits:   map[string]string{"cpu": cpuLim, "memory": memLim},
	}
}

// limits are an agent's ceilings as Kubernetes quantities.
func limits(l manifest.Limits) map[string]string {
	out := map[string]string{}
	if l.CPU > 0 {
		m := int64(l.CPU*1000 + 0.5)
		if m%1000 == 0 {
			out["cpu"] = strconv.FormatInt(m/1000, 10)
		} else {
			out["cpu"] = strconv.FormatInt(m, 10) + "m"
		}
	}
	if l.Memory > 0 {
		out["memory"] = l.Memory.String()
	}
	return out
}

// llmGateway renders the project's LLM gateway: provider keys from a
// Secret only it mounts, agent tokens from another.
func (r *renderer) llmGateway() {
	labels := map[string]string{LabelProject: r.m.Project, LabelRole: "llm-gateway"}
	var agents []string
	for _, a := range r.in.Agents {
		if len(a.Capabilities.LLMAccess) == 0 {
			continue
		}
		line := a.Name + " " + strings.Join(a.Capabilities.LLMAccess, ",")
		if b := a.Capabilities.LLMBudget; b != nil {
			line += fmt.Sprintf(" tokens_per_day=%d dollars_per_day=%g requests_per_minute=%d", b.TokensPerDay, b.DollarsPerDay, b.RequestsPerMinute)
		}
		agents = append(agents, line)
	}
	sort.Strings(agents)
	r.add(&ConfigMap{TypeMeta: meta(gvkConfigMap), Metadata: ObjectMeta{Name: "cortex-llm-config"}, Data: map[string]string{"config.yaml": string(r.in.LLMConfig)}})
	r.add(&ConfigMap{TypeMeta: meta(gvkConfigMap), Metadata: ObjectMeta{Name: "cortex-llm-agents"}, Data: map[string]string{"agents": strings.Join(agents, "\n") + "\n"}})
	r.add(&Service{TypeMeta: meta(gvkService), Metadata: ObjectMeta{Name: "cortex-llm", Labels: map[string]string{LabelRole: "llm-gateway"}},
		Spec: ServiceSpec{Selector: labels, Ports: []ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: LLMPort}}}})
	r.add(&Deployment{TypeMeta: meta(gvkDeployment), Metadata: ObjectMeta{Name: "cortex-llm", Labels: map[string]string{LabelRole: "llm-gateway"}},
		Spec: DeploymentSpec{Replicas: ptr(int32(1)), Selector: LabelSelector{MatchLabels: labels}, Strategy: DeploymentStrategy{Type: "Recreate"},
			Template: PodTemplateSpec{Metadata: ObjectMeta{Labels: labels}, Spec: PodSpec{
				ServiceAccountName: "cortex-agent", AutomountServiceAccountToken: ptr(false), EnableServiceLinks: ptr(false),
				RestartPolicy: "Always", SecurityContext: r.podSecurity(),
				Containers: []Container{{
					Name: "gateway", Image: r.cortexImage(), Command: []string{"cortexd", "cluster", "llm-gateway"},
					Args: []string{"--listen", fmt.Sprintf(":%d", LLMPort), "--project", r.m.Project, "--config", "/etc/cortex/llm/config.yaml",
						"--agents", "/etc/cortex/llm-agents/agents", "--tokens", "/etc/cortex/llm-tokens", "--state", "/var/lib/cortex/llm"},
					Ports: []ContainerPort{{Name: "http", ContainerPort: LLMPort, Protocol: "TCP"}},
					// Provider keys: only this container sees them.
					EnvFrom:   []EnvFromSource{{SecretRef: &LocalObjectReference{Name: SecretLLMKeys}}},
					Resources: smallResources("100m", "64Mi", "1", "256Mi"),
					VolumeMounts: []VolumeMount{
						{Name: "config", MountPath: "/etc/cortex/llm", ReadOnly: true},
						{Name: "agents", MountPath: "/etc/cortex/llm-agents", ReadOnly: true},
						{Name: "tokens", MountPath: "/etc/cortex/llm-tokens", ReadOnly: true},
						{Name: "state", MountPath: "/var/lib/cortex/llm"},
					},
					SecurityContext: restricted(),
				}},
				Volumes: []Volume{
					{Name: "config", ConfigMap: &ConfigMapVolume{Name: "cortex-llm-config"}},
					{Name: "agents", ConfigMap: &ConfigMapVolume{Name: "cortex-llm-agents"}},
					{Name: "tokens", Secret: &SecretVolume{SecretName: SecretLLMTokens}},
					{Name: "state", EmptyDir: &EmptyDir{}},
				},
			}}}})
	r.add(&NetworkPolicy{TypeMeta: meta(gvkNetworkPolicy), Metadata: ObjectMeta{Name: "cortex-llm"},
		Spec: NetworkPolicySpec{PodSelector: LabelSelector{MatchLabels: labels}, PolicyTypes: []string{"Ingress", "Egress"},
			Ingress: []NPRule{{From: []NPPeer{{PodSelector: &LabelSelector{MatchLabels: map[string]string{LabelProject: r.m.Project, LabelRole: "agent"}}}}, Ports: []NPPort{{Protocol: "TCP", Port: LLMPort}}}},
			Egress:  []NPRule{{}},
		}})
}
