package manifest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func intp(i int) *int { return &i }

var daemon = DaemonDefaults{
	Runtime:       "python3.12",
	Limits:        Limits{CPU: 2, Memory: 1 << 30, Pids: 1000},
	RestartPolicy: RestartAlways,
	MaxRestarts:   9,
}

// TestResolvePrecedence checks, field by field, that the agent's value
// wins over defaults, and defaults over the daemon's.
func TestResolvePrecedence(t *testing.T) {
	full := Agent{
		Name: "a", Entrypoint: "a:main", Runtime: "python3.10",
		Resources:     Resources{CPULimit: 0.5, MemLimit: 64 << 20, PidsLimit: 10},
		RestartPolicy: RestartNo, MaxRestarts: intp(0),
	}
	defs := Defaults{
		Runtime:       "nodejs20",
		Resources:     Resources{CPULimit: 1.5, MemLimit: 128 << 20, PidsLimit: 20},
		RestartPolicy: RestartOnFailure, MaxRestarts: intp(4),
	}
	tests := []struct {
		name     string
		agent    Agent
		defaults Defaults
		want     ResolvedAgent
	}{
		{
			name: "agent wins", agent: full, defaults: defs,
			want: ResolvedAgent{Runtime: "python3.10", Limits: Limits{0.5, 64 << 20, 10}, RestartPolicy: RestartNo, MaxRestarts: 0},
		},
		{
			name: "defaults fill", agent: Agent{Name: "a", Entrypoint: "a:main"}, defaults: defs,
			want: ResolvedAgent{Runtime: "nodejs20", Limits: Limits{1.5, 128 << 20, 20}, RestartPolicy: RestartOnFailure, MaxRestarts: 4},
		},
		{
			name: "daemon fills", agent: Agent{Name: "a", Entrypoint: "a:main"},
			want: ResolvedAgent{Runtime: "python3.12", Limits: Limits{2, 1 << 30, 1000}, RestartPolicy: RestartAlways, MaxRestarts: 9},
		},
		{
			name: "each field on its own",
			agent: Agent{Name: "a", Entrypoint: "a:main",
				Resources: Resources{MemLimit: 32 << 20}, MaxRestarts: intp(1)},
			defaults: Defaults{Resources: Resources{CPULimit: 0.25}, RestartPolicy: RestartNo},
			want:     ResolvedAgent{Runtime: "python3.12", Limits: Limits{0.25, 32 << 20, 1000}, RestartPolicy: RestartNo, MaxRestarts: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manifest{Version: "1", Project: "p", Defaults: tc.defaults, Agents: []Agent{tc.agent}}
			got := m.Resolve(daemon)
			if len(got) != 1 {
				t.Fatalf("got %d agents", len(got))
			}
			tc.want.Project, tc.want.Name, tc.want.Entrypoint = "p", "a", "a:main"
			if diff := cmp.Diff(tc.want, got[0]); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveCapabilities(t *testing.T) {
	budgetA := &LLMBudget{TokensPerDay: 10}
	budgetG := &LLMBudget{DollarsPerDay: 3}
	tests := []struct {
		name          string
		agent, global Capabilities
		want          Capabilities
	}{
		{name: "nothing declared stays nil", want: Capabilities{}},
		{
			name:   "lists unioned, agent first, deduplicated",
			agent:  Capabilities{NetworkAccess: []string{"b.example.com", "a.example.com", "b.example.com"}, LLMAccess: []string{"fast"}},
			global: Capabilities{NetworkAccess: []string{"a.example.com", "c.example.com"}, LLMAccess: []string{"smart", "fast"}},
			want:   Capabilities{NetworkAccess: []string{"b.example.com", "a.example.com", "c.example.com"}, LLMAccess: []string{"fast", "smart"}},
		},
		{
			name:   "paths cleaned before union",
			agent:  Capabilities{FilesystemRead: []string{"./data", "data/"}, FilesystemWrite: []string{"out/../out"}},
			global: Capabilities{FilesystemRead: []string{"data", "./shared"}},
			want:   Capabilities{FilesystemRead: []string{"data", "shared"}, FilesystemWrite: []string{"out"}},
		},
		{
			name:   "empty ACL is declared, not nil",
			agent:  Capabilities{BusPublish: []string{}},
			global: Capabilities{BusSubscribe: []string{"tasks"}, BusDurable: []string{"results"}},
			want:   Capabilities{BusPublish: []string{}, BusSubscribe: []string{"tasks"}, BusDurable: []string{"results"}},
		},
		{
			name:   "scalars: agent wins, global fills",
			agent:  Capabilities{Logging: LoggingDefault, LLMBudget: budgetA},
			global: Capabilities{Logging: LoggingStrict, LLMBudget: budgetG, Metrics: true, BusBroker: "redis://h:6379"},
			want:   Capabilities{Logging: LoggingDefault, LLMBudget: budgetA, Metrics: true, BusBroker: "redis://h:6379"},
		},
		{
			name:   "global scalars when agent sets none",
			global: Capabilities{Logging: LoggingStrict, LLMBudget: budgetG},
			want:   Capabilities{Logging: LoggingStrict, LLMBudget: budgetG},
		},
		{
			name:  "broker only from global",
			agent: Capabilities{BusBroker: "nats://x:4222", Metrics: true},
			want:  Capabilities{Metrics: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manifest{GlobalCapabilities: tc.global, Agents: []Agent{{Name: "a", Capabilities: tc.agent}}}
			got := m.Resolve(daemon)[0].Capabilities
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if (tc.want.BusPublish == nil) != (got.BusPublish == nil) {
				t.Errorf("BusPublish nil-ness: want nil=%v", tc.want.BusPublish == nil)
			}
		})
	}
}

// TestResolveSharesNothing checks that changing the result leaves the
// manifest alone.
func TestResolveSharesNothing(t *testing.T) {
	m := &Manifest{
		GlobalCapabilities: Capabilities{NetworkAccess: []string{"g.example.com"}, LLMBudget: &LLMBudget{TokensPerDay: 1}},
		Agents: []Agent{{Name: "a", Env: []EnvVar{{"A", "1"}},
			Capabilities: Capabilities{NetworkAccess: []string{"a.example.com"}}}},
	}
	r := m.Resolve(daemon)[0]
	r.Env[0].Value = "changed"
	r.Capabilities.NetworkAccess[0] = "changed"
	r.Capabilities.LLMBudget.TokensPerDay = 99
	if m.Agents[0].Env[0].Value != "1" || m.Agents[0].Capabilities.NetworkAccess[0] != "a.example.com" || m.GlobalCapabilities.LLMBudget.TokensPerDay != 1 {
		t.Fatalf("Resolve result aliases the manifest: %+v", m)
	}
}

// TestResolveSeed resolves the seed's swarm end to end from the fixture.
func TestResolveSeed(t *testing.T) {
	m, probs := checkFile(t, "testdata/seed-swarm/cortex.yaml", ValidateOptions{HostCPUs: 2})
	if len(probs) != 0 {
		t.Fatalf("seed has problems:\n%v", probs)
	}
	got := m.Resolve(daemon)
	want := []ResolvedAgent{{
		Project: "research-swarm", Name: "researcher", Description: "Finds sources",
		Runtime: "python3.11", Entrypoint: "agents.researcher:main",
		Limits:        Limits{CPU: 0.5, Memory: 512 << 20, Pids: 128},
		RestartPolicy: RestartNo, MaxRestarts: 2,
		Capabilities: Capabilities{
			NetworkAccess:   []string{"api.example.com", "*.example.org", "ice-kernel", "db.example.com:5432"},
			FilesystemRead:  []string{"data"},
			FilesystemWrite: []string{"output"},
			Metrics:         true,
			Logging:         "strict",
			BusBroker:       "redis://host:6379",
			BusPublish:      []string{"analysis-results"},
			BusSubscribe:    []string{"tasks"},
			BusDurable:      []string{"analysis-results"},
			LLMAccess:       []string{"fast", "smart"},
			LLMBudget:       &LLMBudget{TokensPerDay: 100000, DollarsPerDay: 5, RequestsPerMinute: 60},
		},
		Env: []EnvVar{{"ICE_URL", "http://ice-kernel:8000"}, {"CORTEX_SESSION_ID", "project-alpha"}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestResolveDefaultsFromFile checks precedence through real YAML: the
// node-agents fixture inherits runtime and limits from defaults and the
// daemon.
func TestResolveDefaultsFromFile(t *testing.T) {
	m, probs := checkFile(t, "testdata/node-agents/cortex.yaml", ValidateOptions{})
	if len(probs) != 0 {
		t.Fatalf("problems:\n%v", probs)
	}
	var got []string
	for _, a := range m.Resolve(daemon) {
		got = append(got, strings.Join([]string{a.Name, a.Runtime, fmtFloat(a.Limits.CPU), a.Limits.Memory.String(),
			fmtFloat(float64(a.Limits.Pids)), string(a.RestartPolicy), fmtFloat(float64(a.MaxRestarts))}, " "))
	}
	want := []string{
		"fetcher nodejs20 2 256Mi 64 always 9",
		"indexer nodejs20 2 256Mi 64 no 9",
		"legacy nodejs18 2 256Mi 64 always 0",
		"helper python3.12 2 1Gi 64 always 9",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
