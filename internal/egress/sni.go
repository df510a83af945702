package egress

import (
	"errors"
	"fmt"
)

// maxClientHello bounds the ClientHello the gateway buffers to read SNI
// (post-quantum key shares make real ones ~2 KiB; 64 KiB is the TLS limit
// for a handshake message a server would take in practice).
const maxClientHello = 64 << 10

var errNeedMore = errors.New("need more data")

// parseClientHelloSNI reads the TLS ClientHello at the start of b, which may
// span several handshake records, and returns its server_name (host_name),
// "" when the hello carries none. It returns errNeedMore when b holds only a
// prefix of the hello, and another error when b is not a well-formed
// ClientHello (duplicate or empty server_name included). It never panics and
// never reads past len(b).
func parseClientHelloSNI(b []byte) (string, error) {
	msg, err := reassembleHandshake(b)
	if err != nil {
		return "", err
	}
	return clientHelloSNI(msg)
}

// reassembleHandshake collects the first handshake message from consecutive
// TLS handshake records in b.
func reassembleHandshake(b []byte) ([]byte, error) {
	var msg []byte
	want := -1 // length of the whole handshake message, header included
	for {
		if len(b) < 5 {
			return nil, errNeedMore
		}
		if b[0] != 0x16 {
			return nil, fmt.Errorf("tls record type %d, want handshake", b[0])
		}
		if b[1] != 0x03 {
			return nil, fmt.Errorf("tls record version %d.%d", b[1], b[2])
		}
		n := int(b[3])<<8 | int(b[4])
		if n == 0 || n > 1<<14 {
			return nil, fmt.Errorf("tls record length %d", n)
		}
		if len(b) < 5+n {
			return nil, errNeedMore
		}
		msg = append(msg, b[5:5+n]...)
		b = b[5+n:]
		if want < 0 && len(msg) >= 4 {
			if msg[0] != 1 {
				return nil, fmt.Errorf("tls handshake type %d, want client_hello", msg[0])
			}
			want = 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if want > maxClientHello {
				return nil, fmt.Errorf("client hello of %d bytes is too large", want)
			}
		}
		if want >= 0 && len(msg) >= want {
			return msg[:want], nil
		}
	}
}

// cursor is a bounds-checked reader over a byte slice.
type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) bytes(n int) []byte {
	if c.bad || n < 0 || n > len(c.b) {
		c.bad = true
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

func (c *cursor) u8() int {
	v := c.bytes(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (c *cursor) u16() int {
	v := c.bytes(2)
	if v == nil {
		return 0
	}
	return int(v[0])<<8 | int(v[1])
}

func (c *cursor) u24() int {
	v := c.bytes(3)
	if v == nil {
		return 0
	}
	return int(v[0])<<16 | int(v[1])<<8 | int(v[2])
}

// vec reads a length-prefixed vector (prefix of size bytes) as a cursor.
func (c *cursor) vec(size int) *cursor {
	var n int
	switch size {
	case 1:
		n = c.u8()
	case 2:
		n = c.u16()
	default:
		n = c.u24()
	}
	return &cursor{b: c.bytes(n), bad: c.bad}
}

var errMalformedHello = errors.New("malformed client hello")

func clientHelloSNI(msg []byte) (string, error) {
	c := &cursor{b: msg}
	c.u8()                // handshake type, checked by the caller
	body := c.vec(3)      // ClientHello
	version := body.u16() // legacy_version
	body.bytes(32)        // random
	sid := body.vec(1)    // legacy_session_id
	suites := body.vec(2) // cipher_suites
	comp := body.vec(1)   // legacy_compression_methods
	if c.bad || body.bad || version>>8 != 3 || len(sid.b) > 32 || len(suites.b) < 2 || len(suites.b)%2 != 0 || len(comp.b) < 1 {
		return "", errMalformedHello
	}
	if len(body.b) == 0 {
		return "", nil // no extensions at all
	}
	exts := body.vec(2)
	if body.bad || len(body.b) != 0 {
		return "", errMalformedHello
	}
	sni, seen := "", false
	for len(exts.b) > 0 {
		typ := exts.u16()
		data := exts.vec(2)
		if exts.bad {
			return "", errMalformedHello
		}
		if typ != 0 { // server_name
			continue
		}
		if seen {
			return "", errors.New("client hello repeats server_name")
		}
		seen = true
		list := data.vec(2)
		if data.bad || len(data.b) != 0 || len(list.b) == 0 {
			return "", errMalformedHello
		}
		for len(list.b) > 0 {
			kind := list.u8()
			name := list.vec(2)
			if list.bad {
				return "", errMalformedHello
			}
			if kind != 0 { // only host_name is defined
				continue
			}
			if sni != "" || len(name.b) == 0 {
				return "", errors.New("client hello has an empty or repeated host_name")
			}
			sni = string(name.b)
		}
	}
	return sni, nil
}
