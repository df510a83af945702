package config

import (
	"net"
	"time"
)

// Ops is the `ops:` section: doctor, repair, hooks, plugins and updates
// (internal/doctor, internal/hooks, the daemon's ops endpoints and
// cortex-ops consume it).
type Ops struct {
	// ExplainAlias is the LLM gateway alias `cortex-ops doctor --explain`
	// sends the doctor report to ("" = --explain is refused).
	ExplainAlias string `yaml:"explain_alias"`
	// CheckTimeout bounds each doctor check and each check plugin; a
	// check that has not answered by then is a failure.
	CheckTimeout time.Duration `yaml:"check_timeout"`
	// HookTimeout bounds each lifecycle hook; a hook still running then
	// is killed (and a pre-run hook so killed refuses the run).
	HookTimeout time.Duration `yaml:"hook_timeout"`
	// UpdateDeadline bounds an update's restart and health checks; past
	// it the update rolls back.
	UpdateDeadline time.Duration `yaml:"update_deadline"`
	// Offline skips the checks that need the network beyond this host
	// (LLM providers' models call).
	Offline bool `yaml:"offline"`
	// SystemdUnit is the unit cortex-ops update restarts when the daemon
	// runs under systemd.
	SystemdUnit string `yaml:"systemd_unit"`
}

// DefaultOps is the built-in ops configuration.
func DefaultOps() Ops {
	return Ops{
		CheckTimeout:   10 * time.Second,
		HookTimeout:    10 * time.Second,
		UpdateDeadline: 2 * time.Minute,
		SystemdUnit:    "cortexd.service",
	}
}

func (o Ops) validate(bad problem) {
	bad = prefixed(bad, "ops.")
	if o.CheckTimeout <= 0 {
		bad("check_timeout", "must be > 0")
	}
	if o.HookTimeout <= 0 {
		bad("hook_timeout", "must be > 0")
	}
	if o.UpdateDeadline < 5*time.Second {
		bad("update_deadline", "must be >= 5s (a daemon restart and the health checks take seconds)")
	}
	if o.SystemdUnit == "" {
		bad("systemd_unit", "must name a unit, e.g. cortexd.service")
	}
}

// validateResolver checks egress.resolver: "" or host:port.
func validateResolver(addr string, bad problem) {
	if addr == "" {
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		bad("egress.resolver", "%q is not host:port; write e.g. 10.0.0.2:53", addr)
	}
}
