package config

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/manifest"
)

// API is the `api:` section: who may use the daemon's REST API, over
// which transport, and how often (internal/auth and internal/daemon
// consume it). The unix socket is always served; Listen adds TCP.
type API struct {
	// Listen opens a TCP listener (host:port) serving the API over TLS
	// 1.3 only, to callers with an API key or a client certificate. ""
	// (the default) serves the unix socket alone. Port 0 picks a free
	// port; the address bound is written to run/cortex/api.addr.
	Listen string `yaml:"listen" example:"127.0.0.1:7443"`
	// TLS is the listener's certificate. Without one the daemon makes
	// its own, signed by its CA (var/lib/cortex/auth/ca.crt, made on
	// first start), for localhost, the host's name, the listen address
	// and Hosts.
	TLS APITLS `yaml:"tls"`
	// LocalRoles bind roles to local users and groups (callers on the
	// unix socket, by their SO_PEERCRED uid). Root is always admin; every
	// other local user may run projects and act on the ones they own,
	// plus what these bindings grant.
	LocalRoles []LocalRole `yaml:"local_roles"`
	// RateLimits are token buckets per identity, by the identity's
	// highest role.
	RateLimits RateLimits `yaml:"rate_limits"`
	// MaxLimiters bounds how many identities' buckets are kept (the
	// least recently used is forgotten first).
	MaxLimiters int `yaml:"max_limiters"`
}

// APITLS names a certificate and key (PEM files) for the TCP listener.
type APITLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// Hosts are extra DNS names or IP addresses the generated server
	// certificate is valid for.
	Hosts []string `yaml:"hosts"`
}

// LocalRole binds a role to a local user or group (exactly one of the
// two, by name or number).
type LocalRole struct {
	User  string `yaml:"user"`
	Group string `yaml:"group"`
	// Role is viewer, operator or admin.
	Role string `yaml:"role" example:"viewer"`
	// Projects limits the binding to projects: exact names or a prefix
	// ending in '*' (ci-*). Empty means every project.
	Projects []string `yaml:"projects"`
}

// RateLimits hold one bucket setting per role, and one for requests
// that fail authentication (counted per client address).
type RateLimits struct {
	Viewer          RateLimit `yaml:"viewer"`
	Operator        RateLimit `yaml:"operator"`
	Admin           RateLimit `yaml:"admin"`
	Unauthenticated RateLimit `yaml:"unauthenticated"`
}

// RateLimit is a token bucket: Rate requests per second on average,
// Burst at once. Rate 0 means unlimited.
type RateLimit struct {
	Rate  float64 `yaml:"rate" example:"20"`
	Burst int     `yaml:"burst" example:"40"`
}

// Audit is the `audit:` section: the tamper-evident audit log under
// var/lib/cortex/audit (internal/audit consumes it).
type Audit struct {
	// SegmentSize: a segment file is closed (with a signed checkpoint)
	// and a new one begun once it holds this much.
	SegmentSize manifest.Quantity `yaml:"segment_size"`
	// CheckpointInterval: a signed checkpoint of the log's head is
	// appended this often while entries arrive.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// Fsync makes every append durable before the request it records is
	// answered (concurrent appends share one fsync).
	Fsync bool `yaml:"fsync"`
	// DenialWindow: egress, bus, LLM and filesystem denials are recorded
	// as one summary per agent, kind and target per window, so a flood
	// of refusals cannot flood the log.
	DenialWindow time.Duration `yaml:"denial_window"`
}

// DefaultAPI is the built-in api section.
func DefaultAPI() API {
	return API{
		RateLimits: RateLimits{
			Viewer:          RateLimit{Rate: 20, Burst: 40},
			Operator:        RateLimit{Rate: 50, Burst: 100},
			Admin:           RateLimit{Rate: 200, Burst: 400},
			Unauthenticated: RateLimit{Rate: 2, Burst: 10},
		},
		MaxLimiters: 4096,
	}
}

// DefaultAudit is the built-in audit section.
func DefaultAudit() Audit {
	return Audit{SegmentSize: 16 << 20, CheckpointInterval: 5 * time.Second, Fsync: true, DenialWindow: 10 * time.Second}
}

// Roles are the API's roles, least to most.
var Roles = []string{"viewer", "operator", "admin"}

// CheckRole reports whether r is a role.
func CheckRole(r string) error {
	for _, x := range Roles {
		if r == x {
			return nil
		}
	}
	return fmt.Errorf("%q is not a role; use viewer, operator or admin", r)
}

// CheckProjectPattern reports whether p names projects: a project name
// (lowercase letters, digits and '-'), or such a prefix followed by '*',
// or '*' alone.
func CheckProjectPattern(p string) error {
	name := strings.TrimSuffix(p, "*")
	bad := p == "" || len(name) > 63 || strings.Contains(name, "*")
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("%q is not a project pattern; write a project name (lowercase letters, digits and '-') or a prefix ending in '*', e.g. ci-*", p)
	}
	return nil
}

func (a API) validate(bad problem) {
	if a.Listen != "" {
		if _, port, err := net.SplitHostPort(a.Listen); err != nil || port == "" {
			bad("api.listen", "%q is not host:port; write e.g. 127.0.0.1:7443", a.Listen)
		}
	}
	if (a.TLS.Cert == "") != (a.TLS.Key == "") {
		bad("api.tls", "cert and key go together; set both or neither")
	}
	for i, h := range a.TLS.Hosts {
		if h == "" || strings.ContainsAny(h, " /*") {
			bad(fmt.Sprintf("api.tls.hosts[%d]", i), "%q is not a host name or IP address", h)
		}
	}
	for i, lr := range a.LocalRoles {
		f := fmt.Sprintf("api.local_roles[%d]", i)
		if (lr.User == "") == (lr.Group == "") {
			bad(f, "set exactly one of user and group")
		}
		if err := CheckRole(lr.Role); err != nil {
			bad(f+".role", "%v", err)
		}
		for j, p := range lr.Projects {
			if err := CheckProjectPattern(p); err != nil {
				bad(fmt.Sprintf("%s.projects[%d]", f, j), "%v", err)
			}
		}
	}
	for name, rl := range map[string]RateLimit{"viewer": a.RateLimits.Viewer, "operator": a.RateLimits.Operator, "admin": a.RateLimits.Admin, "unauthenticated": a.RateLimits.Unauthenticated} {
		if rl.Rate < 0 || rl.Burst < 0 || (rl.Rate > 0 && rl.Burst < 1) {
			bad("api.rate_limits."+name, "rate must be >= 0 (0 = unlimited) and burst >= 1 when rate is set")
		}
	}
	if a.MaxLimiters < 16 {
		bad("api.max_limiters", "must be >= 16")
	}
}

func (a Audit) validate(bad problem) {
	if a.SegmentSize < 64<<10 {
		bad("audit.segment_size", "must be at least 64Ki")
	}
	if a.CheckpointInterval < 100*time.Millisecond {
		bad("audit.checkpoint_interval", "must be at least 100ms")
	}
	if a.DenialWindow < 100*time.Millisecond {
		bad("audit.denial_window", "must be at least 100ms")
	}
}
