package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServeProxy: the proxy alone, as the egress gateway pod of an agent on
// Kubernetes runs it: allowed names pass (plain HTTP and CONNECT with a
// matching SNI), everything else is refused and reported, and loopback is
// reachable only through a Config.Hosts pin.
func TestServeProxy(t *testing.T) {
	backend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello "+r.Host) }))
	defer backend.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain "+r.Host) }))
	defer plain.Close()
	_, bport, _ := net.SplitHostPort(strings.TrimPrefix(backend.URL, "https://"))
	_, pport, _ := net.SplitHostPort(strings.TrimPrefix(plain.URL, "http://"))

	g, err := New(Config{Hosts: map[string]string{"api.allowed.test": "127.0.0.1", "registry.internal": "127.0.0.1"}, DialTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	pol, err := ParsePolicy([]string{"api.allowed.test", "registry.internal:" + pport})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var denied []Denial
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := g.ServeProxy(context.Background(), l, NetnsOptions{Policy: pol, OnDeny: func(d Denial) { mu.Lock(); denied = append(denied, d); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	proxyURL, _ := url.Parse("http://" + l.Addr().String())
	client := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			Proxy:           http.ProxyURL(proxyURL),
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "api.allowed.test"}, //nolint:gosec // test backend
		}}
	}
	get := func(u string) (string, error) {
		resp, err := client().Get(u)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%s: %s", resp.Status, b)
		}
		return string(b), nil
	}
	if body, err := get("https://api.allowed.test:" + bport + "/"); err != nil || !strings.HasPrefix(body, "hello api.allowed.test") {
		t.Errorf("CONNECT to an allowed name: %q %v", body, err)
	}
	if body, err := get("http://registry.internal:" + pport + "/v2/"); err != nil || !strings.HasPrefix(body, "plain registry.internal") {
		t.Errorf("plain HTTP to an allowed name:port: %q %v", body, err)
	}
	for _, u := range []string{
		"https://denied.test:" + bport + "/",      // not on the list
		"http://127.0.0.1:" + pport + "/",         // literal address
		"http://registry.internal:" + bport + "/", // port not granted
		"http://localhost:" + pport + "/",         // loopback, unpinned
	} {
		if body, err := get(u); err == nil {
			t.Errorf("%s went through: %q", u, body)
		}
	}
	// A CONNECT whose TLS SNI names another host is cut.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT api.allowed.test:%s HTTP/1.1\r\nHost: api.allowed.test:%s\r\n\r\n", bport, bport)
	br := bufio.NewReader(c)
	if line, _ := br.ReadString('\n'); !strings.Contains(line, "200") {
		t.Fatalf("CONNECT reply %q", line)
	}
	for l, _ := br.ReadString('\n'); l != "\r\n" && l != ""; l, _ = br.ReadString('\n') {
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "evil.test"}) //nolint:gosec // test
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Error("a tunnel with a mismatched SNI completed its handshake")
	}
	c.Close()

	mu.Lock()
	n := len(denied)
	mu.Unlock()
	if n < 5 {
		t.Errorf("%d denials reported, want at least 5: %+v", n, denied)
	}
	if st := a.Stats(); st.Allowed < 2 {
		t.Errorf("stats %+v", st)
	}
	a.Close()
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("the listener survived Close")
	}
}
