package egress

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHTTPHead(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    httpHead
		wantErr error
	}{
		{name: "get", in: "GET / HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n", want: httpHead{Method: "GET", Hosts: []string{"api.allowed.test"}}},
		{name: "host with port", in: "GET / HTTP/1.1\r\nHost: api.allowed.test:8080\r\nAccept: */*\r\n\r\nbody", want: httpHead{Method: "GET", Hosts: []string{"api.allowed.test"}}},
		{name: "lowercase header", in: "POST /x HTTP/1.1\r\nhost:api.allowed.test\r\n\r\n", want: httpHead{Method: "POST", Hosts: []string{"api.allowed.test"}}},
		{name: "bare LF", in: "GET / HTTP/1.1\nHost: a.test\n\n", want: httpHead{Method: "GET", Hosts: []string{"a.test"}}},
		{name: "ipv6 host", in: "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", want: httpHead{Method: "GET", Hosts: []string{"::1"}}},
		{name: "http/1.0 no host", in: "GET / HTTP/1.0\r\n\r\n", want: httpHead{Method: "GET"}},
		{name: "absolute form", in: "GET http://other.test:81/p HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n", want: httpHead{Method: "GET", Hosts: []string{"other.test", "api.allowed.test"}}},
		{name: "absolute form userinfo", in: "GET http://api.allowed.test@other.test/ HTTP/1.1\r\n\r\n", want: httpHead{Method: "GET", Hosts: []string{"other.test"}}},
		{name: "connect", in: "CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n", want: httpHead{Method: "CONNECT", Hosts: []string{"other.test", "other.test"}}},
		{name: "h2c preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", want: httpHead{Method: "PRI", H2C: true}},
		{name: "incomplete", in: "GET / HTTP/1.1\r\nHost: a.test\r\n", wantErr: errNeedMore},
		{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", wantErr: errMalformedHTTP},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : b.test\r\n\r\n", wantErr: errMalformedHTTP},
		{name: "obs fold", in: "GET / HTTP/1.1\r\nX: a\r\n Host: b.test\r\n\r\n", wantErr: errMalformedHTTP},
		{name: "no colon", in: "GET / HTTP/1.1\r\nHost b.test\r\n\r\n", wantErr: errMalformedHTTP},
		{name: "bad version", in: "GET / HTTP/3.0\r\n\r\n", wantErr: errMalformedHTTP},
		{name: "extra field", in: "GET / x HTTP/1.1\r\n\r\n", wantErr: errMalformedHTTP},
		{name: "bad target", in: "GET ftp://x/ HTTP/1.1\r\n\r\n", wantErr: errMalformedHTTP},
		{name: "nul in header", in: "GET / HTTP/1.1\r\nHost: a.test\x00b\r\n\r\n", wantErr: errMalformedHTTP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseHTTPHead([]byte(tc.in))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("head (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClassifyVerdict(t *testing.T) {
	hello := clientHello(t, "api.allowed.test")
	other := clientHello(t, "other.allowed.test")
	const name = "api.allowed.test"
	tests := []struct {
		name     string
		in       []byte
		eof      bool
		wantMore bool
		wantKind streamKind
		verdict  Reason
	}{
		{name: "tls match", in: hello, wantKind: kindTLS},
		{name: "tls mismatch", in: other, wantKind: kindTLS, verdict: ReasonSNIMismatch},
		{name: "tls partial", in: hello[:20], wantMore: true, wantKind: kindTLS},
		{name: "tls truncated at eof", in: hello[:20], eof: true, wantKind: kindTLS, verdict: ReasonMalformed},
		{name: "tls first byte", in: hello[:1], wantMore: true, wantKind: kindOpaque},
		{name: "0x16 not tls", in: []byte{0x16, 0x01, 0x02}, wantKind: kindOpaque},
		{name: "http match", in: []byte("GET / HTTP/1.1\r\nHost: API.allowed.test.:443\r\n\r\n"), wantKind: kindHTTP},
		{name: "http mismatch", in: []byte("GET / HTTP/1.1\r\nHost: other.allowed.test\r\n\r\n"), wantKind: kindHTTP, verdict: ReasonHostMismatch},
		{name: "http ip host", in: []byte("GET / HTTP/1.1\r\nHost: 198.18.0.1\r\n\r\n"), wantKind: kindHTTP, verdict: ReasonHostMismatch},
		{name: "http absolute mismatch", in: []byte("GET http://other.allowed.test/ HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n"), wantKind: kindHTTP, verdict: ReasonHostMismatch},
		{name: "http partial method", in: []byte("GE"), wantMore: true, wantKind: kindOpaque},
		{name: "http partial line", in: []byte("GET /index.html"), wantMore: true, wantKind: kindOpaque},
		{name: "http partial head", in: []byte("GET / HTTP/1.1\r\nHost: api"), wantMore: true, wantKind: kindHTTP},
		{name: "http truncated at eof", in: []byte("GET / HTTP/1.1\r\nHost: api"), eof: true, wantKind: kindHTTP, verdict: ReasonMalformed},
		{name: "h2c", in: []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), wantKind: kindHTTP, verdict: ReasonProtocol},
		{name: "redis inline", in: []byte("PING\r\n"), wantKind: kindOpaque},
		{name: "ssh banner", in: []byte("SSH-2.0-OpenSSH_9.6\r\n"), wantKind: kindOpaque},
		{name: "binary", in: []byte{0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f}, wantKind: kindOpaque},
		{name: "lowercase word", in: []byte("get / HTTP/1.1\r\n\r\n"), wantKind: kindOpaque},
		{name: "empty at eof", in: nil, eof: true, wantKind: kindOpaque},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ins, more := classify(tc.in, tc.eof)
			if more != tc.wantMore || ins.kind != tc.wantKind {
				t.Fatalf("classify = kind %d more %v (err %v), want kind %d more %v", ins.kind, more, ins.err, tc.wantKind, tc.wantMore)
			}
			if more {
				return
			}
			if got := ins.verdict(name); got != tc.verdict {
				t.Errorf("verdict = %q, want %q", got, tc.verdict)
			}
		})
	}
}

// FuzzClassify checks the stream classifier (TLS and HTTP head parsers)
// never panics, and that once it decides, more bytes never change a
// decision to let a stream for name through into a refusal or back: the
// verdict on a complete head depends only on that head.
func FuzzClassify(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n"), []byte("x"))
	f.Add([]byte("CONNECT a:1 HTTP/1.1\r\n\r\n"), []byte{})
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\n"), []byte("SM"))
	f.Add(clientHello(f, "api.allowed.test"), []byte{0x17})
	f.Add([]byte{0x16, 0x03}, []byte{0x01})
	f.Fuzz(func(t *testing.T, b, extra []byte) {
		ins, more := classify(b, false)
		classify(b, true)
		if more {
			return
		}
		v := ins.verdict("api.allowed.test")
		ins2, more2 := classify(append(append([]byte{}, b...), extra...), false)
		if more2 {
			t.Fatalf("decided on %q but not on it plus %q", b, extra)
		}
		if v2 := ins2.verdict("api.allowed.test"); v2 != v {
			t.Fatalf("verdict %q on %q, %q with %q appended", v, b, v2, extra)
		}
	})
}
