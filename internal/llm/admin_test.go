package llm

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/llm/llmtest"
)

func TestAdminHandler(t *testing.T) {
	e := newEnv(t, withCache)
	tok := e.register("p", "a", "oa")
	e.openai.SetDefault(llmtest.Reply{Text: "pong", Usage: llmtest.Usage{Input: 5, Output: 1}})
	e.post("/v1/chat/completions", tok, chatBody("oa", false))
	// The daemon mounts the handler under /v1/llm/ without stripping.
	mux := http.NewServeMux()
	mux.Handle("/v1/llm/", e.gw.AdminHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, []byte) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	post := func(path, body string) (int, []byte) {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	t.Run("chat", func(t *testing.T) {
		status, body := post("/v1/llm/chat", `{"alias":"oa","prompt":"ping"}`)
		var res api.LLMChatResult
		if status != 200 || json.Unmarshal(body, &res) != nil {
			t.Fatalf("%d %s", status, body)
		}
		if res.Text != "pong" || res.Provider != "openai" || res.Model != "gpt-4o-mini" || res.Usage.InputTokens != 5 || res.Cache != "miss" || res.FinishReason != "stop" {
			t.Errorf("%+v", res)
		}
		last, _ := e.openai.Last()
		if !strings.Contains(string(last.Body), `"ping"`) {
			t.Errorf("upstream got %s", last.Body)
		}
		status, body = post("/v1/llm/chat", `{"alias":"oa","prompt":"ping"}`)
		if json.Unmarshal(body, &res); res.Cache != "hit" {
			t.Errorf("second chat: %s", body)
		}
		status, body = post("/v1/llm/chat", `{"alias":"nope","prompt":"x"}`)
		if status != 404 || !strings.Contains(string(body), "cortex llm models") {
			t.Errorf("unknown alias: %d %s", status, body)
		}
		if status, _ := post("/v1/llm/chat", `{"alias":"oa","prompt":"x","bogus":1}`); status != 400 {
			t.Errorf("unknown field: %d", status)
		}
	})
	t.Run("usage", func(t *testing.T) {
		status, body := get("/v1/llm/usage?group=project,agent")
		var rep api.LLMUsageReport
		if status != 200 || json.Unmarshal(body, &rep) != nil {
			t.Fatalf("%d %s", status, body)
		}
		rows := map[string]api.LLMUsageRow{}
		for _, r := range rep.Rows {
			rows[r.Project+"/"+r.Agent] = r
		}
		if rows["p/a"].Requests != 1 || rows["p/a"].InputTokens != 5 {
			t.Errorf("agent row %+v", rows["p/a"])
		}
		if rows["_host/cli"].Requests != 2 || rows["_host/cli"].CacheHits != 1 {
			t.Errorf("host row %+v", rows["_host/cli"])
		}
		if rep.Total.Requests != 3 {
			t.Errorf("total %+v", rep.Total)
		}
		status, body = get("/v1/llm/usage?agent=a&group=day,model")
		rep = api.LLMUsageReport{}
		json.Unmarshal(body, &rep)
		if status != 200 || len(rep.Rows) != 1 || rep.Rows[0].Day != "2030-01-02" || rep.Rows[0].Model != "gpt-4o-mini" || rep.Rows[0].Agent != "" {
			t.Errorf("filtered: %s", body)
		}
		if status, body := get("/v1/llm/usage?group=colour"); status != 400 || !strings.Contains(string(body), "colour") {
			t.Errorf("bad group: %d %s", status, body)
		}
		if status, _ := get("/v1/llm/usage?since=yesterday"); status != 400 {
			t.Errorf("bad day: %d", status)
		}
	})
	t.Run("models", func(t *testing.T) {
		status, body := get("/v1/llm/models")
		var rep api.LLMModels
		if status != 200 || json.Unmarshal(body, &rep) != nil {
			t.Fatalf("%d %s", status, body)
		}
		names := []string{}
		for _, a := range rep.Aliases {
			names = append(names, a.Name)
		}
		if strings.Join(names, ",") != "an,fb,gm,local,oa" {
			t.Errorf("aliases %v", names)
		}
		for _, a := range rep.Aliases {
			if a.Name == "fb" && (len(a.Targets) != 2 || a.Targets[1].Provider != "anthropic" || a.Targets[0].Price == nil || a.Strategy != config.StrategyOrdered) {
				t.Errorf("fb %+v", a)
			}
		}
		if strings.Contains(string(body), keyOpenAI) {
			t.Errorf("key in models report")
		}
	})
	t.Run("unknown", func(t *testing.T) {
		if status, _ := get("/v1/llm/nothing"); status != 404 {
			t.Errorf("%d", status)
		}
		if status, _ := get("/v1/llm/chat"); status != 405 {
			t.Errorf("%d", status)
		}
	})
}
