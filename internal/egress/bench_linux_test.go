package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// serveTCP runs handle for every connection to a new host loopback listener
// until the test ends, and returns its port.
func serveTCP(tb testing.TB, handle func(net.Conn)) string {
	tb.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return port(l.Addr())
}

// TestLargeTransfer sends 16 MiB each way through the transparent path,
// with half-close, and checks every byte.
func TestLargeTransfer(t *testing.T) {
	e := newEnv(t, []string{"echo.allowed.test"})
	echo := serveTCP(t, func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
	ip := e.mustLookup("echo.allowed.test")
	c, err := e.dial(net.JoinHostPort(ip.String(), echo))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	data := make([]byte, 16<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	data[0] = 'x' // neither TLS nor HTTP: an opaque stream
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(data) || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("echoed %d bytes that differ from the %d sent", len(got), len(data))
	}
	st := e.a.Stats()
	if st.BytesOut != uint64(len(data)) || st.BytesIn != uint64(len(data)) {
		t.Errorf("bytes out %d in %d, want %d each", st.BytesOut, st.BytesIn, len(data))
	}
}

// BenchmarkConnectFirstByte measures connect + a small HTTP request + the
// first response byte, directly on the host loopback and through the
// transparent path (redirect, SNI/Host inspection, dial from the host).
// The namespace side's sockets are made on a worker thread, which adds a
// channel round trip (~µs) to each dial.
func BenchmarkConnectFirstByte(b *testing.B) {
	e := newEnv(b, []string{"api.allowed.test"})
	srv := serveTCP(b, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	req := []byte("GET / HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n")
	ip := e.mustLookup("api.allowed.test")
	run := func(b *testing.B, dial func() (net.Conn, error)) {
		var one [1]byte
		for b.Loop() {
			c, err := dial()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, one[:]); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	}
	b.Run("direct", func(b *testing.B) {
		run(b, func() (net.Conn, error) { return net.Dial("tcp4", "127.0.0.1:"+srv) })
	})
	b.Run("transparent", func(b *testing.B) {
		addr := net.JoinHostPort(ip.String(), srv)
		run(b, func() (net.Conn, error) { return e.ns.DialContext(context.Background(), "tcp4", addr) })
	})
}

// BenchmarkThroughput measures a 64 MiB download, directly and through the
// transparent path (reported as MB/s).
func BenchmarkThroughput(b *testing.B) {
	const size = 64 << 20
	e := newEnv(b, []string{"api.allowed.test"})
	chunk := bytes.Repeat([]byte{'z'}, 256<<10)
	srv := serveTCP(b, func(c net.Conn) {
		var one [1]byte
		if _, err := io.ReadFull(c, one[:]); err != nil {
			return
		}
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	ip := e.mustLookup("api.allowed.test")
	run := func(b *testing.B, dial func() (net.Conn, error)) {
		b.SetBytes(size)
		for b.Loop() {
			c, err := dial()
			if err != nil {
				b.Fatal(err)
			}
			c.Write([]byte{'x'})
			n, err := io.Copy(io.Discard, c)
			c.Close()
			if err != nil || n != size {
				b.Fatalf("read %d bytes, %v; want %d", n, err, size)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		run(b, func() (net.Conn, error) { return net.Dial("tcp4", "127.0.0.1:"+srv) })
	})
	b.Run("transparent", func(b *testing.B) {
		addr := net.JoinHostPort(ip.String(), srv)
		run(b, func() (net.Conn, error) { return e.ns.DialContext(context.Background(), "tcp4", addr) })
	})
}
