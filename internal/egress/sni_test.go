package egress

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// clientHello returns the first TLS record(s) crypto/tls sends for sni,
// up to the end of the ClientHello.
func clientHello(t testing.TB, sni string) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	cfg := &tls.Config{ServerName: sni, InsecureSkipVerify: true}
	if sni == "" {
		cfg.ServerName = ""
	}
	go tls.Client(c1, cfg).Handshake()
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c2, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(c2, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// fragment re-frames a single-record hello as records of at most n bytes.
func fragment(hello []byte, n int) []byte {
	body := hello[5:]
	var out []byte
	for len(body) > 0 {
		k := min(n, len(body))
		out = append(out, 0x16, 0x03, 0x01, byte(k>>8), byte(k))
		out = append(out, body[:k]...)
		body = body[k:]
	}
	return out
}

func TestParseClientHelloSNI(t *testing.T) {
	withSNI := clientHello(t, "api.allowed.test")
	// crypto/tls omits SNI for an IP ServerName.
	noSNI := clientHello(t, "127.0.0.1")
	tests := []struct {
		name    string
		in      []byte
		want    string
		wantErr error // errNeedMore, errAny or nil
	}{
		{name: "go client", in: withSNI, want: "api.allowed.test"},
		{name: "trailing bytes ignored", in: append(append([]byte{}, withSNI...), 0x17, 0x03, 0x03), want: "api.allowed.test"},
		{name: "fragmented in 100-byte records", in: fragment(withSNI, 100), want: "api.allowed.test"},
		{name: "fragmented in 1-byte records", in: fragment(withSNI, 1), want: "api.allowed.test"},
		{name: "no sni", in: noSNI, want: ""},
		{name: "header only", in: withSNI[:5], wantErr: errNeedMore},
		{name: "half", in: withSNI[:len(withSNI)/2], wantErr: errNeedMore},
		{name: "one short", in: withSNI[:len(withSNI)-1], wantErr: errNeedMore},
		{name: "fragment short", in: fragment(withSNI, 100)[:300], wantErr: errNeedMore},
		{name: "not handshake", in: []byte{0x17, 0x03, 0x03, 0x00, 0x01, 0x00}, wantErr: errAny},
		{name: "not client hello", in: []byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00}, wantErr: errAny},
		{name: "zero length record", in: []byte{0x16, 0x03, 0x01, 0x00, 0x00}, wantErr: errAny},
		{name: "oversized hello", in: []byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff}, wantErr: errAny},
		{name: "empty hello body", in: []byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00}, wantErr: errAny},
		{name: "duplicate server_name", in: withExtraSNI(t, withSNI, "other.allowed.test"), wantErr: errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseClientHelloSNI(tc.in)
			switch {
			case tc.wantErr == errAny:
				if err == nil || errors.Is(err, errNeedMore) {
					t.Fatalf("err = %v, want a parse error", err)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			case got != tc.want:
				t.Errorf("sni = %q, want %q", got, tc.want)
			}
		})
	}
}

var errAny = errors.New("any parse error")

// withExtraSNI appends a second server_name extension to a single-record
// hello, fixing up every length on the way.
func withExtraSNI(t testing.TB, hello []byte, name string) []byte {
	t.Helper()
	ext := []byte{0x00, 0x00, 0, 0, 0, 0, 0x00, 0, 0}
	ext[2], ext[3] = byte((len(name)+5)>>8), byte(len(name)+5)
	ext[4], ext[5] = byte((len(name)+3)>>8), byte(len(name)+3)
	ext[7], ext[8] = byte(len(name)>>8), byte(len(name))
	ext = append(ext, name...)
	out := append(append([]byte{}, hello...), ext...)
	// record length, handshake length
	rl := int(out[3])<<8 | int(out[4]) + len(ext)
	out[3], out[4] = byte(rl>>8), byte(rl)
	hl := int(out[6])<<16 | int(out[7])<<8 | int(out[8]) + len(ext)
	out[6], out[7], out[8] = byte(hl>>16), byte(hl>>8), byte(hl)
	// extensions length: after version(2) random(32) sid suites comp
	c := &cursor{b: out[9:]}
	c.bytes(34)
	c.vec(1)
	c.vec(2)
	c.vec(1)
	off := len(out) - len(c.b)
	el := int(out[off])<<8 | int(out[off+1]) + len(ext)
	out[off], out[off+1] = byte(el>>8), byte(el)
	return out
}

// FuzzParseClientHelloSNI checks the SNI parser never panics and that a
// hello it accepts gives errNeedMore (never another answer) for any
// shorter prefix that ends inside it.
func FuzzParseClientHelloSNI(f *testing.F) {
	f.Add(clientHello(f, "api.allowed.test"))
	f.Add(fragment(clientHello(f, "a.example.org"), 64))
	f.Add(clientHello(f, "127.0.0.1"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		sni, err := parseClientHelloSNI(b)
		if err != nil {
			return
		}
		for _, k := range []int{0, 1, 4, 5, len(b) / 2} {
			if k >= len(b) {
				continue
			}
			s2, err2 := parseClientHelloSNI(b[:k])
			if err2 == nil && s2 != sni {
				t.Fatalf("prefix %d gives %q, whole gives %q", k, s2, sni)
			}
		}
	})
}
