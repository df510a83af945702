package auth

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var wildcard = regexp.MustCompile(`\{([a-z]+)(\.\.\.)?\}`)

// muxValues serves path through a ServeMux holding every route of
// Routes (plus a rest wildcard) and returns the pattern it matched and
// the values it set.
func muxValues(t *testing.T, method, target string) (string, map[string]string, bool) {
	mux := http.NewServeMux()
	var got map[string]string
	var pat string
	patterns := append(routeNames(), "GET /v1/rest/{tail...}")
	for _, p := range patterns {
		names := wildcard.FindAllStringSubmatch(p, -1)
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			pat = r.Pattern
			got = map[string]string{}
			for _, n := range names {
				got[n[1]] = r.PathValue(n[1])
			}
		})
	}
	r := httptest.NewRequest(method, "http://cortexd/", nil)
	r.URL.Path, r.URL.RawPath = "", ""
	u, err := r.URL.Parse(target)
	if err != nil {
		return "", nil, false
	}
	r.URL = u
	_, mp := mux.Handler(r)
	mux.ServeHTTP(httptest.NewRecorder(), r)
	return mp, got, got != nil && pat == mp
}

func checkMatch(t *testing.T, method, target string) {
	mp, want, served := muxValues(t, method, target)
	if !served {
		return
	}
	r := httptest.NewRequest(method, "http://cortexd/", nil)
	u, _ := r.URL.Parse(target)
	got, ok := pathValues(mp, u.EscapedPath())
	if !ok {
		t.Fatalf("%s %s: mux matched %q, pathValues did not", method, target, mp)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s %s (%s): values differ (-mux +pathValues):\n%s", method, target, mp, diff)
	}
}

func TestPathValuesLikeServeMux(t *testing.T) {
	for _, tc := range []struct{ method, target string }{
		{"GET", "/v1/agents/p/a"},
		{"POST", "/v1/agents/p%2Fq/a/kill"},
		{"POST", "/v1/agents/ci-x/%61gent/kill"},
		{"GET", "/v1/agents/%2e%2e/a"},
		{"GET", "/v1/bus/p/ch%20one"},
		{"GET", "/v1/rest/a/b%2Fc/d"},
		{"GET", "/v1/agents/p/"},
		{"DELETE", "/v1/projects/%70rod-y"},
		{"GET", "/v1/%6cogs"},
	} {
		checkMatch(t, tc.method, tc.target)
	}
}

// FuzzPathValues: for any path ServeMux routes, pathValues gives the
// handler the same values the mux would (the pipeline authorizes with
// them and hands them to the handler).
func FuzzPathValues(f *testing.F) {
	for _, s := range []string{"/v1/agents/p/a", "/v1/agents/p%2Fq/a/kill", "/v1/bus/x/y", "/v1/rest/a%2Fb/c", "/v1/projects/a%20b/stop", "/v1/auth/keys/k%2e"} {
		f.Add("GET", s)
		f.Add("POST", s)
	}
	f.Fuzz(func(t *testing.T, method, target string) {
		if method != "GET" && method != "POST" && method != "DELETE" {
			return
		}
		if len(target) == 0 || target[0] != '/' {
			return
		}
		checkMatch(t, method, target)
	})
}
