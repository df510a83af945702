package llm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/llm/cassette"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
)

// streamTimes posts a streamed chat request and returns the text and the
// time each SSE data line arrived, after the request was sent.
func streamTimes(t *testing.T, url, token string, body map[string]any) (string, []time.Duration, int) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all bytes.Buffer
	var times []time.Duration
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		all.WriteString(l + "\n")
		if strings.HasPrefix(l, "data: ") && l != "data: [DONE]" {
			times = append(times, time.Since(start))
		}
	}
	if resp.StatusCode != http.StatusOK {
		return all.String(), nil, resp.StatusCode
	}
	return parseOpenAIStream(t, all.Bytes()).text, times, resp.StatusCode
}

func cassetteChat(msg string, stream bool) map[string]any {
	return map[string]any{"model": "oa", "stream": stream, "messages": []any{map[string]any{"role": "user", "content": msg}}}
}

// TestRecordReplay records a streamed and a plain answer from a fake
// upstream, then replays them in a gateway with no provider at all: the
// same answers, the stream at its recorded pace (within 10%), nothing
// sent upstream, a miss named, no key or token in any cassette file, and
// the cassette kept across a restart.
func TestRecordReplay(t *testing.T) {
	e := newEnv(t)
	e.start()
	if err := e.gw.SetCassette("p", ModeRecord, nil); err != nil {
		t.Fatal(err)
	}
	tok := e.register("p", "a", "oa")
	// The provider echoes its key, and the agent sends its own token: a
	// cassette must hold neither.
	e.openai.Push(
		llmtest.Reply{Text: "one two three four five six leaked " + keyOpenAI, ChunkDelay: 50 * time.Millisecond, Usage: llmtest.Usage{Input: 9, Output: 8}},
		llmtest.Reply{Text: "a plain answer", Usage: llmtest.Usage{Input: 5, Output: 3}},
	)
	streamed := cassetteChat("stream please, my token is "+tok, true)
	text, recTimes, status := streamTimes(t, e.srv.URL, tok, streamed)
	if status != http.StatusOK || !strings.HasPrefix(text, "one two three") {
		t.Fatalf("recording stream: %d %q", status, text)
	}
	plain := e.post("/v1/chat/completions", tok, cassetteChat("plain please", false))
	if plain.status != http.StatusOK {
		t.Fatalf("recording plain: %d %s", plain.status, plain.body)
	}
	plainText := plain.json(t)["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"]
	upstream := e.openai.Count()

	files, err := e.gw.Recorded("p")
	if err != nil || len(files) != 2 {
		t.Fatalf("Recorded = %d files, %v", len(files), err)
	}
	raw := map[string][]byte{}
	var streamFile *cassette.File
	for name, b := range files {
		for _, secret := range append(allKeys, tok) {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("cassette %s holds a secret %q", name, secret[:8])
			}
		}
		f, err := cassette.Parse(name, b)
		if err != nil {
			t.Fatal(err)
		}
		raw[name] = b
		if f.Interactions[0].Stream {
			streamFile = f
		}
	}
	if streamFile == nil || len(streamFile.Interactions[0].Events) < 8 {
		t.Fatalf("no recorded stream with its events: %+v", streamFile)
	}

	// Replay in a gateway that knows no provider and no alias.
	cfg := config.DefaultLLM()
	dirs := Dirs{Cache: filepath.Join(t.TempDir(), "c"), State: filepath.Join(t.TempDir(), "s")}
	gw, err := newGateway(cfg, dirs, slog.New(slog.DiscardHandler), func(string) string { return "" }, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.SetCassette("p", ModeReplay, raw); err != nil {
		t.Fatal(err)
	}
	rtok, err := gw.RegisterAgent("p", "a", []string{"oa"}, nil)
	if err != nil {
		t.Fatalf("register with an alias only the cassette knows: %v", err)
	}
	srv := httptest.NewServer(gw.AgentHandler())
	defer srv.Close()
	// The same request, with this agent's own token in it: tokens are
	// redacted before the key is computed, so it is the same key.
	streamed["messages"] = []any{map[string]any{"role": "user", "content": "stream please, my token is " + rtok}}
	rtext, repTimes, status := streamTimes(t, srv.URL, rtok, streamed)
	if status != http.StatusOK || rtext != strings.ReplaceAll(text, keyOpenAI, "[redacted]") {
		t.Fatalf("replayed stream: %d %q, want %q", status, rtext, text)
	}
	if len(repTimes) != len(recTimes) {
		t.Fatalf("replayed %d events, recorded %d", len(repTimes), len(recTimes))
	}
	// The pace, against the times the cassette recorded (as the gateway
	// saw the events come): the client's first data line is the start
	// event's, its last the finish event's; the span between them within
	// 10% of the recorded one.
	var recStart, recEnd time.Duration
	for _, te := range streamFile.Interactions[0].Events {
		d := time.Duration(te.AtMs * float64(time.Millisecond))
		switch te.Kind {
		case "start":
			recStart = d
		case "finish":
			recEnd = d
		}
	}
	recSpan, repSpan := recEnd-recStart, repTimes[len(repTimes)-1]-repTimes[0]
	if recSpan < 300*time.Millisecond || absDur(repSpan-recSpan) > recSpan/10 {
		t.Errorf("replayed stream spans %s, the cassette %s (more than 10%% apart)", repSpan, recSpan)
	}
	t.Logf("stream span: recorded %s, replayed %s", recSpan, repSpan)
	hdr := map[string]string{"Authorization": "Bearer " + rtok}
	rp := doAt(t, srv.URL, "/v1/chat/completions", cassetteChat("plain please", false), hdr)
	if rp.status != http.StatusOK {
		t.Fatalf("replayed plain: %d %s", rp.status, rp.body)
	}
	if got := rp.json(t)["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"]; got != plainText || rp.header.Get(HeaderCache) != "replay" {
		t.Errorf("replayed plain = %q (cache %q), recorded %q", got, rp.header.Get(HeaderCache), plainText)
	}
	miss := doAt(t, srv.URL, "/v1/chat/completions", cassetteChat("never recorded", false), hdr)
	if miss.status != http.StatusNotFound || !strings.Contains(string(miss.body), `the cassette has no answer for this request (alias \"oa\", 1 message(s), last user message \"never recorded\"`) {
		t.Errorf("miss: %d %s", miss.status, miss.body)
	}
	if e.openai.Count() != upstream {
		t.Errorf("the replay reached the upstream (%d requests, %d before)", e.openai.Count(), upstream)
	}
	// A restarted daemon keeps replaying.
	gw.Close()
	gw2, err := newGateway(cfg, dirs, slog.New(slog.DiscardHandler), func(string) string { return "" }, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer gw2.Close()
	srv2 := httptest.NewServer(gw2.AgentHandler())
	defer srv2.Close()
	if a := doAt(t, srv2.URL, "/v1/chat/completions", cassetteChat("plain please", false), hdr); a.status != http.StatusOK {
		t.Errorf("after a restart: %d %s", a.status, a.body)
	}
	// Back to live: the project's cassette is gone.
	if err := gw2.SetCassette("p", ModeLive, nil); err != nil {
		t.Fatal(err)
	}
	if a := doAt(t, srv2.URL, "/v1/chat/completions", cassetteChat("plain please", false), hdr); a.status != http.StatusNotFound {
		t.Errorf("live with no alias configured: %d %s", a.status, a.body)
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func doAt(t *testing.T, base, path string, body any, hdr map[string]string) answer {
	t.Helper()
	e := &env{t: t, srv: &httptest.Server{URL: base}}
	return e.do(http.MethodPost, path, "", body, hdr)
}
