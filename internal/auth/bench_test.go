package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cortexrt/cortex/internal/audit"
	"github.com/cortexrt/cortex/internal/config"
	"golang.org/x/crypto/argon2"
)

// BenchmarkPipeline measures what authentication, authorization, rate
// limiting and the audit append add to one API call: the same handler
// (GET /v1/projects, filtered by the caller) bare and through the
// pipeline, as root on the unix socket and with an API key over TLS,
// with the audit log's fsync on (the default) and off. The added
// latency is pipeline ns/op minus bare ns/op.
func BenchmarkPipeline(b *testing.B) {
	unlimited := config.RateLimits{Viewer: config.RateLimit{}, Operator: config.RateLimit{}, Admin: config.RateLimit{}, Unauthenticated: config.RateLimit{Rate: 1, Burst: 1}}
	for _, bc := range []struct {
		name  string
		bare  bool
		key   bool
		fsync bool
	}{
		{name: "bare", bare: true},
		{name: "unix-root/fsync", fsync: true},
		{name: "unix-root/nofsync"},
		{name: "tls-key/fsync", key: true, fsync: true},
		{name: "tls-key/nofsync", key: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHarness(b, unlimited)
			l, err := audit.Open(audit.Options{Dir: b.TempDir(), Fsync: bc.fsync})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			h.p.Audit = l
			h.p.Events = nil
			as := root
			if bc.key {
				_, secret, _ := h.store.CreateKey("ci", "operator", []string{"ci-*"}, 0)
				as = who{key: secret}
			}
			var handler http.Handler = h.p
			if bc.bare {
				handler = h.p.Mux
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := httptest.NewRequest("GET", "http://cortexd/v1/projects", nil)
				if bc.bare {
					r = r.WithContext(withCaller(r, Root()))
				} else {
					r = h.request(b, as, r)
				}
				w := httptest.NewRecorder()
				handler.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkKeyHash compares what checking an API key costs per request:
// the HMAC-SHA256 the store uses, and argon2id with RFC 9106's
// low-memory parameters (t=3, m=64 MiB, p=4).
func BenchmarkKeyHash(b *testing.B) {
	s, err := OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	secret := KeyPrefix + "kV3u2bq1Wm0s9c7C2dE4fG6hJ8kL0mN2pQ4rS6tU8vW"
	b.Run("hmac-sha256", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = s.hash(secret)
		}
	})
	b.Run("argon2id-t3-m64MiB-p4", func(b *testing.B) {
		salt := make([]byte, 16)
		for i := 0; i < b.N; i++ {
			_ = argon2.IDKey([]byte(secret), salt, 3, 64*1024, 4, 32)
		}
	})
}
