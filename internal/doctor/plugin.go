package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/trust"
)

// Check plugins are executables in etc/cortex/plugins/checks/. Each is run
// with no arguments, stdin closed, the environment of PluginEnv, in its
// own process group, and must print the doctor report's JSON on stdout:
//
//	{"checks": [{"id": "backup.age", "title": "...", "status": "ok|warn|fail|skip",
//	             "evidence": "...", "fix": {"kind": "manual", "description": "..."}}]}
//
// (a bare array of checks, or one check object, is accepted too). Each
// check is reported as plugin.<name>.<id>, after an entry plugin.<name>
// that says whether the plugin itself ran: one that hangs past the check
// timeout (it is killed, with its process group), exits non-zero, prints
// nothing or prints anything else is a failure of plugin.<name> with the
// reason, never a failure of doctor. Plugins cannot offer auto fixes: a
// fix of kind auto is reported as manual.

// maxPluginOutput caps what a plugin may print.
const maxPluginOutput = 1 << 20

var pluginName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Plugins returns a check for each executable in dir (sorted by name).
// Files starting with "." or ending with "~" are ignored; a missing dir
// means no plugins. env is the plugins' environment.
func Plugins(dir string, env []string) []Check {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []Check
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || strings.HasSuffix(n, "~") || e.IsDir() {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, &pluginCheck{name: n, path: filepath.Join(dir, n), env: env})
	}
	return out
}

// PluginEnv is the environment check plugins run with.
func PluginEnv(root, socket string) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"CORTEX_ROOT=" + root,
		"CORTEX_HOST=unix://" + socket,
		"CORTEX_DOCTOR_SCHEMA=" + api.DoctorSchema,
		"LC_ALL=C.UTF-8",
	}
	if h := os.Getenv("HOME"); h != "" {
		env = append(env, "HOME="+h)
	}
	return env
}

type pluginCheck struct {
	name, path string
	env        []string
}

func (p *pluginCheck) id() string { return "plugin." + p.name }

func (p *pluginCheck) Info() Info {
	return Info{ID: p.id(), Title: "Check plugin " + p.name}
}

func (p *pluginCheck) Run(ctx context.Context) Result {
	if !pluginName.MatchString(p.name) {
		return Fail(Manual("rename it to letters, digits, '.', '_' or '-'", ""), "%s: the name is not allowed", p.path)
	}
	if err := trust.Executable(p.path); err != nil {
		fix := Manual("make it root's and writable by nobody else", "chown root:root "+p.path+" && chmod 0755 "+p.path)
		if !trust.IsUntrusted(err) {
			fix = Manual("make it executable, or remove it", "chmod 0755 "+p.path)
		}
		return Fail(fix, "refused to run %s: %v", p.path, err)
	}
	cmd := exec.CommandContext(ctx, p.path)
	cmd.Env = p.env
	cmd.Dir = "/"
	var stdout, stderr capped
	stdout.max, stderr.max = maxPluginOutput, 8<<10
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On timeout kill the whole group: a shell's children go too.
	cmd.Cancel = func() error {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		return Fail(nil, "%s did not finish within %s; killed", p.path, time.Since(start).Round(100*time.Millisecond))
	}
	if err != nil {
		return Fail(nil, "%s failed: %v%s", p.path, err, tailOf(stderr.String()))
	}
	if stdout.over {
		return Fail(nil, "%s printed more than %d bytes", p.path, maxPluginOutput)
	}
	checks, err := parsePluginOutput(stdout.Bytes())
	if err != nil {
		return Fail(nil, "%s printed no doctor JSON: %v; output starts %q", p.path, err, head(stdout.Bytes(), 80))
	}
	r := OK("%s reported %d check(s)", p.path, len(checks))
	for _, c := range checks {
		if !strings.HasPrefix(c.ID, p.id()+".") {
			c.ID = p.id() + "." + c.ID
		}
		c.Source = "plugin:" + p.name
		c.DependsOn = []string{p.id()}
		if c.Fix != nil && c.Fix.Kind == api.FixAuto {
			c.Fix.Kind = api.FixManual
		}
		r.More = append(r.More, c)
	}
	return r
}

// parsePluginOutput reads {"checks": [...]}, [...] or one check, and
// validates each check.
func parsePluginOutput(out []byte) ([]api.Check, error) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return nil, errors.New("empty output")
	}
	if !utf8.Valid(out) {
		return nil, errors.New("output is not UTF-8")
	}
	var checks []api.Check
	switch out[0] {
	case '{':
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(out, &probe); err != nil {
			return nil, err
		}
		if raw, ok := probe["checks"]; ok {
			if err := json.Unmarshal(raw, &checks); err != nil {
				return nil, fmt.Errorf("checks: %w", err)
			}
		} else {
			var c api.Check
			if err := json.Unmarshal(out, &c); err != nil {
				return nil, err
			}
			checks = []api.Check{c}
		}
	case '[':
		if err := json.Unmarshal(out, &checks); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("not a JSON object or array")
	}
	if len(checks) == 0 {
		return nil, errors.New("no checks")
	}
	for i := range checks {
		c := &checks[i]
		if c.ID == "" || !pluginName.MatchString(c.ID) {
			return nil, fmt.Errorf("checks[%d].id %q: use letters, digits, '.', '_' or '-'", i, c.ID)
		}
		switch c.Status {
		case api.CheckOK, api.CheckWarn, api.CheckFail, api.CheckSkip:
		default:
			return nil, fmt.Errorf("checks[%d].status %q: use ok, warn, fail or skip", i, c.Status)
		}
		if c.Fix != nil && c.Fix.Kind != api.FixAuto && c.Fix.Kind != api.FixManual {
			return nil, fmt.Errorf("checks[%d].fix.kind %q: use manual", i, c.Fix.Kind)
		}
		if c.Title == "" {
			c.Title = c.ID
		}
	}
	return checks, nil
}

func tailOf(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if len(s) > 300 {
		s = "..." + s[len(s)-300:]
	}
	return "; stderr: " + s
}

func head(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// capped is a buffer that keeps at most max bytes and notes overflow.
type capped struct {
	bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room < len(p) {
		c.over = true
		if room > 0 {
			c.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return c.Buffer.Write(p)
}

var _ io.Writer = (*capped)(nil)
