package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/manifest"
)

// canaryRuntimes are tried in order for the canary agent.
var canaryRuntimes = []string{"python3.11", "python3.12", "python3.13", "python3.10", "nodejs20", "nodejs22", "nodejs18"}

// canaryTimeout bounds a canary run.
const canaryTimeout = 60 * time.Second

// runCanary runs a tiny built-in agent through the whole path of cortex
// run (bundle, verify, extract, sandbox, output) and checks it printed
// its nonce and exited 0; the project is removed afterwards. Pre-run
// hooks do not see it: it tests the machinery, not the site's policy.
func (d *Daemon) runCanary(ctx context.Context) api.CanaryResult {
	start := time.Now()
	var b [6]byte
	_, _ = rand.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	res := api.CanaryResult{Project: "cortex-canary-" + nonce}
	fail := func(err error) api.CanaryResult {
		res.Error = err.Error()
		res.DurationMS = time.Since(start).Milliseconds()
		return res
	}
	for _, rt := range canaryRuntimes {
		if d.rt.Available(rt) == nil {
			res.Runtime = rt
			break
		}
	}
	if res.Runtime == "" {
		return fail(fmt.Errorf("no interpreter for any of %s", strings.Join(canaryRuntimes, ", ")))
	}
	dir, err := os.MkdirTemp(filepath.Join(d.paths.LibDir, "tmp"), "canary-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	entry, file, code := "canary:main", "canary.py", "def main():\n    print('cortex canary ok "+nonce+"', flush=True)\n"
	if manifest.IsNode(res.Runtime) {
		entry, file, code = "canary.js:main", "canary.js", "exports.main = () => { console.log('cortex canary ok "+nonce+"'); };\n"
	}
	mf := fmt.Sprintf("version: \"1\"\nproject: %s\nagents:\n  - name: canary\n    runtime: %s\n    entrypoint: %s\n    restart_policy: \"no\"\n", res.Project, res.Runtime, entry)
	if err := os.MkdirAll(src, 0o700); err != nil {
		return fail(err)
	}
	for name, data := range map[string]string{"cortex.yaml": mf, file: code} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			return fail(err)
		}
	}
	bpath := filepath.Join(dir, "canary.cortex")
	f, err := os.Create(bpath)
	if err != nil {
		return fail(err)
	}
	_, err = bundle.Create(ctx, f, bundle.CreateOptions{Dir: src})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(fmt.Errorf("bundle: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, canaryTimeout)
	defer cancel()
	if _, err := d.createProject(ctx, &upload{path: bpath, project: res.Project}, "canary", nil, 0, 0, runOptions{}); err != nil {
		return fail(fmt.Errorf("run: %w", err))
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer rcancel()
		if err := d.sup.Remove(rctx, res.Project, true); err != nil {
			d.log.Warn("remove the canary project", "project", res.Project, "err", err)
		}
		d.forgetBus(rctx, res.Project)
	}()
	for {
		sts := d.sup.List(ctx, res.Project, true)
		if len(sts) == 1 && !sts[0].State.Active() && !sts[0].RestartPending {
			st := sts[0]
			var out []string
			_ = d.logs.Read(ctx, logs.Query{Project: res.Project, Agent: "canary"}, func(r logs.Record) error {
				out = append(out, r.Message)
				return nil
			})
			res.Output = strings.Join(out, "\n")
			res.DurationMS = time.Since(start).Milliseconds()
			code := -1
			if st.ExitCode != nil {
				code = *st.ExitCode
			}
			if code != 0 || !strings.Contains(res.Output, "cortex canary ok "+nonce) {
				res.Error = fmt.Sprintf("the canary ended %s (%s, exit code %d) without printing its nonce", st.State, st.Reason, code)
				return res
			}
			res.OK = true
			return res
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Errorf("the canary did not finish within %s", canaryTimeout))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *Daemon) postOpsCanary(w http.ResponseWriter, r *http.Request) error {
	if err := d.walls.refuseMissing(); err != nil {
		return err
	}
	res := d.runCanary(r.Context())
	outcome := "ok"
	if !res.OK {
		outcome = "failed"
		d.log.Warn("canary failed", "project", res.Project, "runtime", res.Runtime, "err", res.Error, "output", res.Output)
	}
	d.log.Info("canary", "outcome", outcome, "runtime", res.Runtime, "took", time.Duration(res.DurationMS)*time.Millisecond)
	api.WriteJSON(w, http.StatusOK, res)
	return nil
}
