// Command llm-bench measures the latency the Cortex LLM gateway adds to
// streamed chat completions, and its memory, at several concurrencies.
//
// It runs a fake OpenAI upstream (internal/llm/llmtest) and a load
// generator in this process, and the gateway in a child process (this
// binary re-executed with -serve) so the gateway's memory can be read from
// /proc on its own. For each concurrency it runs the same streams against
// the upstream directly and through the gateway and reports p50/p99 of
// time to first token and total time for both, their difference, and the
// gateway's RSS and heap before and at the peak of the run.
//
//	go run ./bench/llm -conc 1,100,1000
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/llm"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
)

const benchKey = "sk-bench-upstream-key"

func main() {
	serve := flag.Bool("serve", false, "internal: run the gateway (child process)")
	upstream := flag.String("upstream", "", "internal: upstream base URL for -serve")
	concList := flag.String("conc", "1,100,1000", "concurrencies to measure")
	chunks := flag.Int("chunks", 20, "text deltas per streamed answer")
	chunkDelay := flag.Duration("chunk-delay", 5*time.Millisecond, "upstream delay before each stream event")
	minSamples := flag.Int("samples", 1000, "minimum streams per measurement (rounds of -conc streams)")
	cpuProfile := flag.String("cpuprofile", "", "write the gateway's CPU profile to this file")
	flag.Parse()
	if *serve {
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		if err := serveGateway(*upstream); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := run(*concList, *chunks, *chunkDelay, *minSamples, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// serveGateway is the child: a gateway on a loopback listener whose first
// stdout line is "<addr> <token>"; GET /debug/mem reports its heap.
func serveGateway(upstream string) error {
	dir, err := os.MkdirTemp("", "llm-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := config.DefaultLLM()
	cfg.Providers = []config.LLMProvider{{Name: "fake", Kind: config.ProviderOpenAI, BaseURL: upstream, APIKeyEnv: "BENCH_UPSTREAM_KEY"}}
	cfg.Aliases = map[string]config.LLMAlias{"fast": {Targets: []config.LLMTarget{{Provider: "fake", Model: "gpt-4o-mini"}}}}
	cfg.Cache.Enabled = false
	gw, err := llm.New(cfg, llm.Dirs{Cache: dir + "/cache", State: dir + "/state"}, config.Getenv, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		return err
	}
	defer gw.Close()
	tok, err := gw.RegisterAgent("bench", "agent", []string{"fast"}, nil)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gw.AgentHandler())
	mux.HandleFunc("/debug/mem", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		json.NewEncoder(w).Encode(map[string]uint64{"heap_inuse": ms.HeapInuse, "goroutines": uint64(runtime.NumGoroutine())})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", ln.Addr(), tok)
	srv := &http.Server{Handler: mux}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

type sample struct{ ttft, total time.Duration }

type stats struct {
	n                                int
	errors                           int
	ttft50, ttft99, total50, total99 time.Duration
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(p*float64(len(d))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(d) {
		i = len(d) - 1
	}
	return d[i]
}

func summarize(s []sample, errs int) stats {
	t, tot := make([]time.Duration, len(s)), make([]time.Duration, len(s))
	for i, x := range s {
		t[i], tot[i] = x.ttft, x.total
	}
	sort.Slice(t, func(i, j int) bool { return t[i] < t[j] })
	sort.Slice(tot, func(i, j int) bool { return tot[i] < tot[j] })
	return stats{n: len(s), errors: errs, ttft50: pct(t, .5), ttft99: pct(t, .99), total50: pct(tot, .5), total99: pct(tot, .99)}
}

// stream makes one streamed request and times its first content delta and
// its end.
func stream(ctx context.Context, c *http.Client, url, key string, want int) (sample, error) {
	body := `{"model":"fast","stream":true,"messages":[{"role":"user","content":"hello"}]}`
	if strings.Contains(url, "/v1/chat/completions") && key == benchKey {
		body = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}]}`
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return sample{}, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var s sample
	got := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("data: ")) {
			continue
		}
		if bytes.Equal(line[6:], []byte("[DONE]")) {
			break
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(line[6:], &ch); err != nil {
			return sample{}, err
		}
		if len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			if got == 0 {
				s.ttft = time.Since(start)
			}
			got++
		}
	}
	if err := sc.Err(); err != nil {
		return sample{}, err
	}
	if got != want {
		return sample{}, fmt.Errorf("got %d deltas, want %d", got, want)
	}
	s.total = time.Since(start)
	return s, nil
}

// round runs conc concurrent streams once.
func round(c *http.Client, url, key string, conc, want int) ([]sample, int, string) {
	var mu sync.Mutex
	var out []sample
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s, err := stream(ctx, c, url, key, want)
			if err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			mu.Lock()
			out = append(out, s)
			mu.Unlock()
		}()
	}
	wg.Wait()
	e, _ := firstErr.Load().(string)
	return out, int(errs.Load()), e
}

// procMem reads VmRSS and VmHWM (peak RSS) of pid in KiB.
func procMem(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return
}

func heapOf(c *http.Client, addr string, gc bool) (heap, goroutines uint64) {
	u := "http://" + addr + "/debug/mem"
	if gc {
		u += "?gc=1"
	}
	resp, err := c.Get(u)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	var m map[string]uint64
	json.NewDecoder(resp.Body).Decode(&m)
	return m["heap_inuse"], m["goroutines"]
}

func run(concList string, chunks int, chunkDelay time.Duration, minSamples int, cpuProfile string) error {
	fake := llmtest.Start(llmtest.OpenAI, benchKey)
	defer fake.Close()
	fake.SetRecord(false)
	words := make([]string, chunks)
	for i := range words {
		words[i] = "w" + strconv.Itoa(i)
	}
	fake.SetDefault(llmtest.Reply{Text: strings.Join(words, " "), ChunkDelay: chunkDelay, Usage: llmtest.Usage{Input: 10, Output: int64(chunks)}})

	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(self, "-serve", "-upstream", fake.URL, "-cpuprofile", cpuProfile)
	child.Env = append(os.Environ(), "BENCH_UPSTREAM_KEY="+benchKey)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return err
	}
	defer func() {
		child.Process.Signal(os.Interrupt)
		child.Wait()
	}()
	var addr, tok string
	if _, err := fmt.Fscan(out, &addr, &tok); err != nil {
		return fmt.Errorf("read gateway address: %w", err)
	}
	pid := child.Process.Pid

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute}}
	fmt.Printf("llm gateway benchmark: %d deltas per stream, %v upstream delay per event, GOMAXPROCS=%d, %d CPUs\n",
		chunks, chunkDelay, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("%-6s %-8s %6s %4s %10s %10s %10s %10s\n", "conc", "path", "n", "err", "ttft p50", "ttft p99", "total p50", "total p99")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }
	for _, cs := range strings.Split(concList, ",") {
		conc, err := strconv.Atoi(strings.TrimSpace(cs))
		if err != nil || conc < 1 {
			return fmt.Errorf("bad concurrency %q", cs)
		}
		direct, viaGW := fake.URL+"/chat/completions", "http://"+addr+"/v1/chat/completions"
		// Warm both paths' connections.
		round(client, direct, benchKey, conc, chunks)
		round(client, viaGW, tok, conc, chunks)

		heap0, _ := heapOf(client, addr, true)
		rss0, _ := procMem(pid)
		var peakRSS int64
		var peakHeap, peakG uint64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if r, _ := procMem(pid); r > peakRSS {
						peakRSS = r
					}
					if h, g := heapOf(client, addr, false); h > peakHeap {
						peakHeap, peakG = h, g
					}
				}
			}
		}()
		// Alternate rounds so both paths see the same machine load.
		rounds := max((minSamples+conc-1)/conc, 3)
		var ds, gs []sample
		var derr, gerr int
		for r := 0; r < rounds; r++ {
			s, n, e := round(client, direct, benchKey, conc, chunks)
			ds, derr = append(ds, s...), derr+n
			if e != "" {
				fmt.Fprintln(os.Stderr, "  direct error:", e)
			}
			s, n, e = round(client, viaGW, tok, conc, chunks)
			gs, gerr = append(gs, s...), gerr+n
			if e != "" {
				fmt.Fprintln(os.Stderr, "  gateway error:", e)
			}
		}
		close(stop)
		<-done
		d, g := summarize(ds, derr), summarize(gs, gerr)

		fmt.Printf("%-6d %-8s %6d %4d %10s %10s %10s %10s\n", conc, "direct", d.n, d.errors, ms(d.ttft50), ms(d.ttft99), ms(d.total50), ms(d.total99))
		fmt.Printf("%-6d %-8s %6d %4d %10s %10s %10s %10s\n", conc, "gateway", g.n, g.errors, ms(g.ttft50), ms(g.ttft99), ms(g.total50), ms(g.total99))
		fmt.Printf("%-6d %-8s %6s %4s %10s %10s %10s %10s\n", conc, "added", "", "", ms(g.ttft50-d.ttft50), ms(g.ttft99-d.ttft99), ms(g.total50-d.total50), ms(g.total99-d.total99))
		fmt.Printf("       gateway memory: RSS %.1f MiB idle -> %.1f MiB peak (+%.1f MiB); heap in use %.1f MiB -> %.1f MiB peak (%d goroutines at peak)\n",
			float64(rss0)/1024, float64(peakRSS)/1024, float64(peakRSS-rss0)/1024, float64(heap0)/(1<<20), float64(peakHeap)/(1<<20), peakG)
	}
	return nil
}
