package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/bus/bustest"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
	"github.com/cortexrt/cortex/internal/oci"
	"github.com/cortexrt/cortex/internal/oci/ocitest"
)

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pushProject bundles a small project and pushes it; it returns the
// reference pinned by digest.
func pushProject(t *testing.T, reg *ocitest.Registry, sign bool) (string, string) {
	t.Helper()
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"cortex.yaml":        "version: \"1\"\nproject: p\nagents:\n  - name: a\n    runtime: python3.11\n    entrypoint: agents.a:main\n",
		"agents/__init__.py": "", "agents/a.py": "def main():\n    pass\n", "data/topics.txt": "x\n",
	})
	file := filepath.Join(t.TempDir(), "b.cortex")
	f, _ := os.Create(file)
	if _, err := bundle.Create(context.Background(), f, bundle.CreateOptions{Dir: src}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var opts oci.PushOptions
	keyFile := ""
	if sign {
		priv, pub, _ := oci.GenerateKey()
		k, _ := oci.ParsePrivateKey("k", priv)
		opts.Sign = k
		keyFile = filepath.Join(t.TempDir(), "k.pub")
		_ = os.WriteFile(keyFile, pub, 0o644)
	}
	res, err := (&oci.Client{CertsDir: t.TempDir()}).Push(context.Background(), file, reg.Host+"/p:v1", opts)
	if err != nil {
		t.Fatal(err)
	}
	return reg.Host + "/p@" + res.Manifest.Digest.String(), keyFile
}

func TestFetch(t *testing.T) {
	reg := ocitest.Start(t, ocitest.Options{})
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	ref, _ := pushProject(t, reg, false)
	work, share := t.TempDir(), t.TempDir()
	o := FetchOptions{Bundle: ref, Dir: work, Share: share, CertsDir: t.TempDir(), Mountpoints: []string{"output", "logs/deep"}}
	for run := 0; run < 2; run++ { // a restarted init container runs again
		if err := Fetch(context.Background(), o, testLog(t)); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	for _, p := range []string{"app/cortex.yaml", "app/agents/a.py", "app/data/topics.txt"} {
		if _, err := os.Stat(filepath.Join(work, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, d := range []string{"app/output", "app/logs/deep"} {
		if fi, err := os.Stat(filepath.Join(work, d)); err != nil || !fi.IsDir() {
			t.Errorf("mount point %s: %v", d, err)
		}
	}
	for _, p := range []string{"shims/bootstrap.py", "shims/bootstrap.js", "sdk/python/cortex/bus.py", "sdk/node/cortex/package.json"} {
		if _, err := os.Stat(filepath.Join(share, p)); err != nil {
			t.Errorf("share %s: %v", p, err)
		}
	}
	if ents, _ := os.ReadDir(work); len(ents) != 1 {
		t.Errorf("work dir holds %v, want app only", ents)
	}

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			mod  func(*FetchOptions)
			want string
		}{
			{"by tag", func(o *FetchOptions) { o.Bundle = reg.Host + "/p:v1" }, "not pinned by digest"},
			{"unsigned with a key", func(o *FetchOptions) {
				_, pub, _ := oci.GenerateKey()
				o.VerifyKey = filepath.Join(t.TempDir(), "k.pub")
				_ = os.WriteFile(o.VerifyKey, pub, 0o644)
			}, "is not signed"},
			{"mount point outside", func(o *FetchOptions) { o.Mountpoints = []string{"../escape"} }, "mount point ../escape"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				oo := o
				oo.Dir = t.TempDir()
				tc.mod(&oo)
				err := Fetch(context.Background(), oo, testLog(t))
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Fetch: %v, want %q", err, tc.want)
				}
			})
		}
	})
	t.Run("signed", func(t *testing.T) {
		sref, key := pushProject(t, reg, true)
		oo := o
		oo.Bundle, oo.VerifyKey, oo.Dir = sref, key, t.TempDir()
		if err := Fetch(context.Background(), oo, testLog(t)); err != nil {
			t.Fatal(err)
		}
	})
}

// natsWithToken is the cluster's NATS as the Helm chart runs it.
func natsWithToken(t *testing.T, token string) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), Authorization: token, NoSigs: true, MaxPayload: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

func waitSocket(t *testing.T, path string, errc <-chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case err := <-errc:
			t.Fatalf("sidecar ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no socket at %s", path)
}

// TestBusSidecars: two sidecars, one per agent pod, on one NATS: the
// agents speak the bus protocol on their sockets, ACLs from the flags hold.
func TestBusSidecars(t *testing.T) {
	url := natsWithToken(t, "bus-token")
	dir, err := os.MkdirTemp("", "cx-sidecar-") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	run := func(o BusOptions) {
		o.NATS, o.Project, o.Token = url, "swarm", "bus-token"
		go func() { errc <- BusSidecar(ctx, o, testLog(t)) }()
	}
	pubSock, subSock := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	run(BusOptions{Agent: "researcher", Socket: pubSock, Publish: []string{"results"}, SubscribeNone: true})
	run(BusOptions{Agent: "writer", Socket: subSock, Subscribe: []string{"results"}, Durable: []string{"results"}})
	waitSocket(t, pubSock, errc)
	waitSocket(t, subSock, errc)
	pub, err := bustest.Dial(ctx, pubSock)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if l, err := pub.Publish("results", map[string]any{"score": 0.94}); err != nil || l.Op != "ok" {
		t.Fatalf("publish: %+v %v", l, err)
	}
	if l, err := pub.Subscribe("results"); err == nil {
		t.Fatalf("subscribe with bus.subscribe: [] went through: %+v", l)
	}
	sub, err := bustest.Dial(ctx, subSock)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if l, err := sub.Subscribe("results"); err != nil || !l.Durable {
		t.Fatalf("subscribe: %+v %v", l, err)
	}
	m, err := sub.Next(10 * time.Second)
	if err != nil || m.From != "researcher" || !bytes.Contains(m.Payload, []byte("0.94")) {
		t.Fatalf("message across sidecars: %+v %v", m, err)
	}
	cancel()
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			t.Errorf("sidecar: %v", err)
		}
	}
	if err := BusSidecar(context.Background(), BusOptions{NATS: url, Project: "p", Agent: "a", Socket: filepath.Join(dir, "c.sock"), Token: "wrong"}, testLog(t)); err == nil {
		t.Error("a sidecar with the wrong token started")
	}
}

// TestEgressGateway: the gateway's proxy reaches the pinned registry
// (loopback here, refused for any unpinned name) and its TCP forward
// carries bytes both ways.
func TestEgressGateway(t *testing.T) {
	registry := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "registry "+r.Host) })}
	rl, _ := net.Listen("tcp", "127.0.0.1:0")
	go registry.Serve(rl)
	defer registry.Close()
	echo, _ := net.Listen("tcp", "127.0.0.1:0")
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	_, rport, _ := net.SplitHostPort(rl.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan [2]string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- EgressGateway(ctx, GatewayOptions{
			Listen: "127.0.0.1:0", Allow: []string{"api.example.com"}, Registry: "registry.test:" + rport,
			Lookup: func(_ context.Context, host string) ([]string, error) {
				if host != "registry.test" {
					return nil, fmt.Errorf("no such host %s", host)
				}
				return []string{"127.0.0.1"}, nil
			},
			Forwards: []string{"127.0.0.1:0=" + echo.Addr().String()},
			Ready:    func(p net.Addr, f []net.Addr) { ready <- [2]string{p.String(), f[0].String()} },
		}, testLog(t))
	}()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-errc:
		t.Fatal(err)
	}
	pu, _ := url.Parse("http://" + addrs[0])
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := hc.Get("http://registry.test:" + rport + "/v2/")
	if err != nil {
		t.Fatalf("registry through the gateway: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "registry registry.test") {
		t.Fatalf("registry through the gateway: %s %q", resp.Status, body)
	}
	for _, u := range []string{"http://127.0.0.1:" + rport + "/v2/", "http://registry.test:1/v2/"} {
		if resp, err := hc.Get(u); err == nil && resp.StatusCode == 200 {
			t.Errorf("%s went through", u)
		}
	}
	c, err := net.Dial("tcp", addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(c, "PING nats")
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || line != "PING nats\n" {
		t.Fatalf("forward: %q %v", line, err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestLLMGateway: an agent's own token reaches the provider through the
// gateway (with the provider's key, which the agent never has); an
// unknown token is refused.
func TestLLMGateway(t *testing.T) {
	up := llmtest.New(t, llmtest.OpenAI, "sk-provider-key")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"keys/openai":    "sk-provider-key\n",
		"agents":         "crawler fast tokens_per_day=100000 dollars_per_day=0 requests_per_minute=30\nidle fast\n",
		"tokens/crawler": "cx-crawler-token-0123456789\n",
		"tokens/idle":    "cx-idle-token-0123456789abcd\n",
	})
	writeFiles(t, dir, map[string]string{"config.yaml": fmt.Sprintf(`providers:
  - name: openai
    kind: openai
    base_url: %s
    api_key_env: CORTEX_TEST_OPENAI_KEY
aliases:
  fast:
    targets:
      - {provider: openai, model: gpt-4o-mini}
`, up.URL)})
	// As in the pod: the key is an environment variable from Secret
	// cortex-llm-keys (envFrom).
	t.Setenv("CORTEX_TEST_OPENAI_KEY", "sk-provider-key")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- LLMGateway(ctx, LLMOptions{Listen: "127.0.0.1:0", Project: "walls", Config: filepath.Join(dir, "config.yaml"),
			Agents: filepath.Join(dir, "agents"), Tokens: filepath.Join(dir, "tokens"), State: filepath.Join(dir, "state"),
			Ready: func(a net.Addr) { ready <- a.String() }}, testLog(t))
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		t.Fatal(err)
	}
	call := func(token string) (int, string) {
		body := `{"model":"fast","messages":[{"role":"user","content":"hi"}]}`
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := call("cx-crawler-token-0123456789")
	var out struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	_ = json.Unmarshal([]byte(body), &out)
	if code != 200 || len(out.Choices) == 0 || !strings.Contains(out.Choices[0].Message.Content, "fake") {
		t.Fatalf("agent call: %d %s", code, body)
	}
	reqs := up.Requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer sk-provider-key" {
		t.Fatalf("upstream saw %d requests, auth %q", len(reqs), reqs[0].Header.Get("Authorization"))
	}
	if code, _ := call("sk-provider-key"); code != http.StatusUnauthorized {
		t.Errorf("the provider key as agent token: %d", code)
	}
	if code, _ := call(""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestSeccompInstall(t *testing.T) {
	from, to := t.TempDir(), filepath.Join(t.TempDir(), "seccomp", "cortex")
	writeFiles(t, from, map[string]string{"agent-abc.json": `{"defaultAction":"SCMP_ACT_ALLOW"}`, "..data/x.json": "{}", "README": "x"})
	n, err := InstallSeccomp(from, to)
	if err != nil || n != 1 {
		t.Fatalf("InstallSeccomp = %d, %v", n, err)
	}
	ents, _ := os.ReadDir(to)
	if len(ents) != 1 || ents[0].Name() != "agent-abc.json" {
		t.Fatalf("installed %v", ents)
	}
	if _, err := InstallSeccomp(t.TempDir(), to); err == nil {
		t.Error("an empty profile directory was accepted")
	}
}

func TestMainUsage(t *testing.T) {
	var b bytes.Buffer
	if code := Main(nil, &b); code != 2 || !strings.Contains(b.String(), "bus-sidecar") {
		t.Errorf("no mode: %d %q", code, b.String())
	}
	b.Reset()
	if code := Main([]string{"nope"}, &b); code != 2 || !strings.Contains(b.String(), `unknown mode "nope"`) {
		t.Errorf("unknown mode: %d %q", code, b.String())
	}
	b.Reset()
	if code := Main([]string{"fetch", "--bogus"}, &b); code != 2 {
		t.Errorf("bad flag: %d %q", code, b.String())
	}
}
