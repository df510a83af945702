// Command bus measures the Cortex bus against redis-server Pub/Sub on this
// machine, side by side: messages per second and end-to-end latency
// (publish call to subscriber receipt, p50/p99) for
//
//   - python-sdk:  a Python agent publishing with cortex.bus to a Python agent
//   - node-sdk:    the same with the Node SDK
//   - go-raw:      the wire protocol from Go (one request in flight, like the SDKs)
//   - go-raw-pipe: the wire protocol from Go with pipelined publishes
//   - redis:       go-redis PUBLISH to a go-redis subscriber (one in flight)
//   - redis-pipe:  go-redis pipelined PUBLISH
//
// Each scenario runs twice: flat out (throughput, and latency under that
// load) and paced at -rate messages per second (latency without queueing).
// Run from the repository root:
//
//	go run ./bench/bus [-n 20000] [-paced 2000] [-rate 1000] [-json]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/cortexrt/cortex/internal/config"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cortexrt/cortex/internal/bus"
	"github.com/cortexrt/cortex/internal/bus/bustest"
	"github.com/cortexrt/cortex/internal/runtimes"
)

type result struct {
	Scenario string  `json:"scenario"`
	Mode     string  `json:"mode"` // flat | paced
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	PerSec   float64 `json:"msgs_per_sec"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	Err      string  `json:"error,omitempty"`
}

var (
	n      = flag.Int("n", 20000, "messages per flat-out run")
	paced  = flag.Int("paced", 2000, "messages per paced run")
	rate   = flag.Float64("rate", 1000, "messages per second in paced runs")
	asJSON = flag.Bool("json", false, "print JSON instead of a table")
	only   = flag.String("only", "", "comma-separated scenarios to run")
	root   = flag.String("root", ".", "repository root (for sdk/ and the test agents)")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	tmp, err := os.MkdirTemp("", "busbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ctx := context.Background()
	s, err := bus.New(ctx, bus.Config{SubscriberBuffer: 1 << 20}, filepath.Join(tmp, "store"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer s.Close()
	pubSock, subSock := filepath.Join(tmp, "pub.sock"), filepath.Join(tmp, "sub.sock")
	for _, a := range []struct{ path, agent string }{{pubSock, "pub"}, {subSock, "sub"}} {
		if _, err := s.ServeAgent(ctx, bus.Identity{Project: "bench", Agent: a.agent}, bus.Policy{}, a.path, -1, -1); err != nil {
			return err
		}
	}
	rds, err := startRedis(tmp)
	if err != nil {
		return err
	}
	defer rds.stop()

	env := benchEnv{s: s, pubSock: pubSock, subSock: subSock, redisAddr: rds.addr}
	scenarios := []struct {
		name string
		fn   func(channel string, count int, rate float64) result
	}{
		{"python-sdk", env.sdk("python")},
		{"node-sdk", env.sdk("node")},
		{"go-raw", env.goRaw(false)},
		{"go-raw-pipe", env.goRaw(true)},
		{"redis", env.redis(false)},
		{"redis-pipe", env.redis(true)},
	}
	var results []result
	for _, sc := range scenarios {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), sc.name) {
			continue
		}
		for _, mode := range []string{"flat", "paced"} {
			count, r := *n, 0.0
			if mode == "paced" {
				count, r = *paced, *rate
			}
			res := sc.fn(sc.name+"-"+mode, count, r)
			res.Scenario, res.Mode, res.Sent = sc.name, mode, count
			results = append(results, res)
			fmt.Fprintf(os.Stderr, "%s %s: %.0f msg/s p50 %.0fµs p99 %.0fµs %s\n", sc.name, mode, res.PerSec, res.P50us, res.P99us, res.Err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	printTable(results)
	return nil
}

func printTable(results []result) {
	// One-in-flight scenarios compare with redis, pipelined ones with
	// redis-pipe.
	base := map[string]result{}
	for _, r := range results {
		if r.Scenario == "redis" || r.Scenario == "redis-pipe" {
			base[r.Scenario+"/"+r.Mode] = r
		}
	}
	baseOf := func(r result) result {
		if strings.HasSuffix(r.Scenario, "-pipe") {
			return base["redis-pipe/"+r.Mode]
		}
		return base["redis/"+r.Mode]
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tmode\tmsgs/s\tp50 µs\tp99 µs\trecv/sent\tmsgs/s ÷ redis\tp50 ÷ redis\t")
	fmt.Fprintln(w, "\t\t\t\t\t\t(-pipe: ÷ redis-pipe)\t\t")
	for _, r := range results {
		b := baseOf(r)
		ratio := func(x, y float64) string {
			if y == 0 || x == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", x/y)
		}
		fmt.Fprintf(w, "%s\t%s\t%.0f\t%.0f\t%.0f\t%d/%d\t%s\t%s\t%s\n", r.Scenario, r.Mode, r.PerSec, r.P50us, r.P99us,
			r.Received, r.Sent, ratio(r.PerSec, b.PerSec), ratio(r.P50us, b.P50us), r.Err)
	}
	w.Flush()
}

type benchEnv struct {
	s                *bus.Server
	pubSock, subSock string
	redisAddr        string
}

// stats turns receive times and latencies into a result.
func stats(lat []time.Duration, first, last time.Time) result {
	if len(lat) == 0 {
		return result{Err: "nothing received"}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds())
	}
	r := result{Received: len(lat), P50us: pct(0.50), P99us: pct(0.99)}
	if span := last.Sub(first).Seconds(); span > 0 {
		r.PerSec = float64(len(lat)-1) / span
	}
	return r
}

func (e benchEnv) waitSubscribed(channel string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, st := range e.s.Stats() {
			if st.Channel == channel && st.Subscribers > 0 {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New("subscriber never subscribed")
}

// sdk runs the test agents (internal/bus/testdata) as publisher and
// subscriber processes.
func (e benchEnv) sdk(lang string) func(string, int, float64) result {
	return func(channel string, count int, r float64) result {
		var bin, script, pathEnv string
		switch lang {
		case "python":
			bin, script, pathEnv = interpreter("python>=3.10"), "internal/bus/testdata/py/agent.py", "PYTHONPATH="+filepath.Join(*root, "sdk", "python")
		default:
			bin, script, pathEnv = interpreter("nodejs>=18"), "internal/bus/testdata/node/agent.js", "NODE_PATH="+filepath.Join(*root, "sdk", "node")
		}
		script = filepath.Join(*root, script)
		cmd := func(sock string, args ...string) *exec.Cmd {
			if lang == "python" {
				args = append([]string{"-u", script}, args...)
			} else {
				args = append([]string{script}, args...)
			}
			c := exec.Command(bin, args...)
			c.Env = append(os.Environ(), pathEnv, "CORTEX_BUS="+sock, "PYTHONDONTWRITEBYTECODE=1")
			c.Stderr = os.Stderr
			return c
		}
		sub := cmd(e.subSock, "bench-sub", channel, strconv.Itoa(count))
		out, err := sub.StdoutPipe()
		if err != nil {
			return result{Err: err.Error()}
		}
		if err := sub.Start(); err != nil {
			return result{Err: err.Error()}
		}
		defer func() { _ = sub.Process.Kill(); _ = sub.Wait() }()
		if err := e.waitSubscribed(channel); err != nil {
			return result{Err: err.Error()}
		}
		pubArgs := []string{"bench-pub", channel, strconv.Itoa(count)}
		if r > 0 {
			pubArgs = append(pubArgs, "--rate", fmt.Sprint(r))
		}
		if b, err := cmd(e.pubSock, pubArgs...).Output(); err != nil {
			return result{Err: fmt.Sprintf("publisher: %v %s", err, b)}
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "{") {
				continue
			}
			var got struct {
				Received int     `json:"received"`
				P50      float64 `json:"p50_us"`
				P99      float64 `json:"p99_us"`
				Span     float64 `json:"span_s"`
			}
			if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
				return result{Err: err.Error()}
			}
			res := result{Received: got.Received, P50us: got.P50, P99us: got.P99}
			if got.Span > 0 {
				res.PerSec = float64(got.Received-1) / got.Span
			}
			return res
		}
		return result{Err: "subscriber printed no result"}
	}
}

type benchPayload struct {
	N   int   `json:"n"`
	T   int64 `json:"t"`
	End bool  `json:"end,omitempty"`
}

// pace sleeps until message i is due at rate r (0: never).
func pace(start time.Time, i int, r float64) {
	if r <= 0 {
		return
	}
	if d := time.Until(start.Add(time.Duration(float64(i) / r * float64(time.Second)))); d > 0 {
		time.Sleep(d)
	}
}

// collect reads payloads until end (or a 10 s silence) and measures.
func collect(next func() ([]byte, error)) result {
	var lat []time.Duration
	var first, last time.Time
	for {
		b, err := next()
		if err != nil {
			r := stats(lat, first, last)
			r.Err = err.Error()
			return r
		}
		now := time.Now()
		var p benchPayload
		if err := json.Unmarshal(b, &p); err != nil {
			continue
		}
		if p.End {
			return stats(lat, first, last)
		}
		if first.IsZero() {
			first = now
		}
		last = now
		lat = append(lat, now.Sub(time.Unix(0, p.T)))
	}
}

func (e benchEnv) goRaw(pipelined bool) func(string, int, float64) result {
	return func(channel string, count int, r float64) result {
		ctx := context.Background()
		sub, err := bustest.Dial(ctx, e.subSock)
		if err != nil {
			return result{Err: err.Error()}
		}
		defer sub.Close()
		if _, err := sub.Subscribe(channel); err != nil {
			return result{Err: err.Error()}
		}
		pub, err := bustest.Dial(ctx, e.pubSock)
		if err != nil {
			return result{Err: err.Error()}
		}
		defer pub.Close()
		done := make(chan result, 1)
		go func() {
			done <- collect(func() ([]byte, error) {
				m, err := sub.Next(10 * time.Second)
				return m.Payload, err
			})
		}()
		prefix := `{"op":"publish","channel":` + strconv.Quote(channel) + `,"payload":`
		if pipelined {
			// Replies are drained concurrently; requests carry no id.
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				rd := bufio.NewReader(pub.Conn())
				for i := 0; i <= count; i++ {
					if _, err := rd.ReadSlice('\n'); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
						return
					}
				}
			}()
			bw := bufio.NewWriterSize(pub.Conn(), 1<<16)
			start := time.Now()
			for i := 0; i <= count; i++ {
				pace(start, i, r)
				p := benchPayload{N: i, T: time.Now().UnixNano(), End: i == count}
				b, _ := json.Marshal(p)
				bw.WriteString(prefix)
				bw.Write(b)
				bw.WriteString("}\n")
				if r > 0 || i == count {
					bw.Flush()
				}
			}
			wg.Wait()
		} else {
			start := time.Now()
			for i := 0; i <= count; i++ {
				pace(start, i, r)
				if _, err := pub.Publish(channel, benchPayload{N: i, T: time.Now().UnixNano(), End: i == count}); err != nil {
					return result{Err: err.Error()}
				}
			}
		}
		return <-done
	}
}

func (e benchEnv) redis(pipelined bool) func(string, int, float64) result {
	return func(channel string, count int, r float64) result {
		ctx := context.Background()
		sc := redis.NewClient(&redis.Options{Addr: e.redisAddr, DisableIdentity: true})
		defer sc.Close()
		pc := redis.NewClient(&redis.Options{Addr: e.redisAddr, DisableIdentity: true})
		defer pc.Close()
		ps := sc.Subscribe(ctx, channel)
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil {
			return result{Err: err.Error()}
		}
		done := make(chan result, 1)
		go func() {
			done <- collect(func() ([]byte, error) {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				m, err := ps.ReceiveMessage(rctx)
				if err != nil {
					return nil, err
				}
				return []byte(m.Payload), nil
			})
		}()
		start := time.Now()
		if pipelined {
			const batch = 256
			pipe := pc.Pipeline()
			for i := 0; i <= count; i++ {
				pace(start, i, r)
				b, _ := json.Marshal(benchPayload{N: i, T: time.Now().UnixNano(), End: i == count})
				pipe.Publish(ctx, channel, b)
				if r > 0 || i%batch == batch-1 || i == count {
					if _, err := pipe.Exec(ctx); err != nil {
						return result{Err: err.Error()}
					}
				}
			}
		} else {
			for i := 0; i <= count; i++ {
				pace(start, i, r)
				b, _ := json.Marshal(benchPayload{N: i, T: time.Now().UnixNano(), End: i == count})
				if err := pc.Publish(ctx, channel, b).Err(); err != nil {
					return result{Err: err.Error()}
				}
			}
		}
		return <-done
	}
}

type redisProc struct {
	cmd  *exec.Cmd
	addr string
}

func startRedis(dir string) (*redisProc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bustest.RedisServerPath, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--protected-mode", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	p := &redisProc{cmd: cmd, addr: "127.0.0.1:" + strconv.Itoa(port)}
	c := redis.NewClient(&redis.Options{Addr: p.addr, DisableIdentity: true})
	defer c.Close()
	for i := 0; i < 200; i++ {
		if c.Ping(context.Background()).Err() == nil {
			return p, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	p.stop()
	return nil, errors.New("redis-server did not answer")
}

func (p *redisProc) stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// interpreter finds the newest interpreter of a runtime range as the
// daemon would (internal/runtimes), or exits.
func interpreter(rng string) string {
	ip, err := runtimes.NewRegistry(nil, config.FromEnv().PyenvRoot).Lookup(rng)
	if err != nil {
		log.Fatalf("%s: %v", rng, err)
	}
	return ip.Path
}
