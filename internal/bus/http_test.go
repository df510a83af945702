package bus

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
)

func TestHandler(t *testing.T) {
	s := newServer(t, Config{MaxPayload: 256}, "")
	mux := http.NewServeMux()
	mux.Handle("/v1/bus/", s.Handler())
	mux.Handle("/stripped/", http.StripPrefix("/stripped", s.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// An SSE subscriber, as `cortex bus subscribe p news` would open.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/bus/p/news", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("subscribe: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
		close(events)
	}()
	waitSubscribers(t, s, "p", "news", 1)

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		want                     string // substring of the response body
	}{
		{"publish", "POST", "/v1/bus/p/news", `{"headline": "hi"}`, 200, `"id":`},
		{"publish-stripped", "POST", "/stripped/p/news", `{"headline": "again"}`, 200, `"id":`},
		{"publish-array", "POST", "/v1/bus/p/news", `[1]`, 400, `"category":"invalid argument"`},
		{"publish-too-large", "POST", "/v1/bus/p/news", `{"x":"` + strings.Repeat("a", 300) + `"}`, 413, `"category":"invalid argument"`},
		{"publish-bad-channel", "POST", "/v1/bus/p/a..b", `{}`, 400, `not a valid name`},
		{"stats", "GET", "/v1/bus/stats", "", 200, `"channel":"news"`},
		{"stats-stripped", "GET", "/stripped/stats", "", 200, `"node":"` + s.NodeID() + `"`},
		{"unknown", "DELETE", "/v1/bus/p/news", "", 405, `"category":"invalid argument"`},
		{"no-route", "GET", "/v1/bus/p/news/extra", "", 404, `"category":"not found"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var sb strings.Builder
			_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
			if resp.StatusCode != tc.status || !strings.Contains(sb.String(), tc.want) {
				t.Errorf("%s %s = %d %s, want %d containing %s", tc.method, tc.path, resp.StatusCode, sb.String(), tc.status, tc.want)
			}
		})
	}
	for _, want := range []string{`{"headline":"hi"}`, `{"headline":"again"}`} {
		select {
		case d := <-events:
			var m Message
			if err := json.Unmarshal([]byte(d), &m); err != nil {
				t.Fatal(err)
			}
			if string(m.Payload) != want || m.Project != "p" || m.Channel != "news" {
				t.Errorf("event %+v, want payload %s", m, want)
			}
		case <-time.After(wait):
			t.Fatal("no SSE event")
		}
	}
	var rep api.BusStats
	r, err := http.Get(srv.URL + "/v1/bus/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	st := statsOf(s, "p", "news")
	if st.Published != 2 || st.Delivered != 2 || st.Subscribers != 1 || len(rep.Channels) != 1 || rep.Channels[0] != st {
		t.Errorf("stats report %+v, server stats %+v", rep, st)
	}
	cancel()
	waitSubscribers(t, s, "p", "news", 0)
}
