package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
)

const firstLine = `import time
T0 = time.time_ns()


def main():
    print(T0, flush=True)
`

func percentile(v []float64, p float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

// BenchmarkColdStart measures, for the hello agent, the time from the API
// call that runs it to its first line of code, beside a plain
// `python3 -c` start of the same code, interleaved in one run. Reported:
// p50/p99 of both and of the difference of medians.
func BenchmarkColdStart(b *testing.B) {
	d := daemontest.Start(b, daemontest.Options{})
	dir := daemontest.Project(b, map[string]string{
		"cortex.yaml": "version: \"1\"\nproject: cold\nagents:\n  - name: hello\n    runtime: python3.11\n    entrypoint: agent:main\n",
		"agent.py":    firstLine,
	})
	var buf bytes.Buffer
	if _, err := bundle.Create(context.Background(), &buf, bundle.CreateOptions{Dir: dir}); err != nil {
		b.Fatal(err)
	}
	bundleBytes := buf.Bytes()
	python := runtimestest.Python(b).Path
	runs := max(b.N, 30)
	var cortex, plain []float64
	ctx := context.Background()
	for i := 0; i < runs; i++ {
		// Plain interpreter.
		t0 := time.Now()
		out, err := exec.Command(python, "-c", strings.ReplaceAll(firstLine, "def main():\n    print(T0, flush=True)\n", "print(T0)")).Output()
		if err != nil {
			b.Fatal(err)
		}
		plain = append(plain, msSince(b, t0, out))

		// Through the daemon: API call -> first line of agent code.
		t0 = time.Now()
		if _, err := d.Client.Run(ctx, bytes.NewReader(bundleBytes), int64(len(bundleBytes)), "", "cold.cortex"); err != nil {
			b.Fatal(err)
		}
		d.Final("cold", "hello", 30*time.Second)
		var line string
		_ = d.Client.Logs(ctx, api.LogsQuery{Project: "cold", Agent: "hello", Tail: 1, Since: t0}, func(r logs.Record) error { return nil })
		err = d.Client.Logs(ctx, api.LogsQuery{Project: "cold", Agent: "hello", Since: t0}, func(r logs.Record) error {
			if r.Stream == "stdout" {
				line = r.Message
			}
			return nil
		})
		if err != nil || line == "" {
			b.Fatalf("no first line from the agent (err %v)", err)
		}
		cortex = append(cortex, msSince(b, t0, []byte(line)))
	}
	b.ReportMetric(percentile(plain, 0.5), "plain-p50-ms")
	b.ReportMetric(percentile(plain, 0.99), "plain-p99-ms")
	b.ReportMetric(percentile(cortex, 0.5), "cortex-p50-ms")
	b.ReportMetric(percentile(cortex, 0.99), "cortex-p99-ms")
	b.ReportMetric(percentile(cortex, 0.5)-percentile(plain, 0.5), "overhead-p50-ms")
	b.Logf("runs=%d plain p50 %.1f ms p99 %.1f ms | cortex p50 %.1f ms p99 %.1f ms | overhead p50 %.1f ms",
		runs, percentile(plain, .5), percentile(plain, .99), percentile(cortex, .5), percentile(cortex, .99), percentile(cortex, .5)-percentile(plain, .5))
}

func msSince(b *testing.B, t0 time.Time, out []byte) float64 {
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatalf("parse %q: %v", out, err)
	}
	return float64(time.Unix(0, ns).Sub(t0).Microseconds()) / 1000
}

// BenchmarkDaemonMemoryPerAgent runs 100 idle agents and reports the
// daemon's resident memory growth per agent.
func BenchmarkDaemonMemoryPerAgent(b *testing.B) {
	const n = 100
	d := daemontest.Start(b, daemontest.Options{})
	var agents strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&agents, "  - name: idle%03d\n    entrypoint: agent:main\n    resources: {mem_limit: 64Mi, cpu_limit: 0.1}\n", i)
	}
	dir := daemontest.Project(b, map[string]string{
		"cortex.yaml": "version: \"1\"\nproject: idle\ndefaults:\n  runtime: python3.11\nagents:\n" + agents.String(),
		"agent.py":    "import time\ndef main():\n    print('idle', flush=True)\n    time.sleep(3600)\n",
	})
	// Warm the daemon up: one API round of each kind it will serve.
	d.MustCLI("", "list")
	time.Sleep(500 * time.Millisecond)
	before := rss(b, d.Pid())
	d.MustCLI(dir, "run", "-d", ".")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		list, err := d.Client.Agents(context.Background(), "idle", false)
		if err != nil {
			b.Fatal(err)
		}
		running := 0
		for _, a := range list {
			if a.State == api.Running {
				running++
			}
		}
		if running == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d agents running", running, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	after := rss(b, d.Pid())
	per := float64(after-before) / n / (1 << 20)
	b.ReportMetric(float64(before)/(1<<20), "rss-idle-MiB")
	b.ReportMetric(float64(after)/(1<<20), "rss-100-agents-MiB")
	b.ReportMetric(per, "MiB/agent")
	b.Logf("daemon RSS %.1f MiB idle, %.1f MiB with %d agents: %.2f MiB per agent", float64(before)/(1<<20), float64(after)/(1<<20), n, per)
	d.MustCLI("", "stop", "--grace", "2s", "idle")
}

func rss(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
