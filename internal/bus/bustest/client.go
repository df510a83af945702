// Package bustest helps test and benchmark the bus: a raw wire-protocol
// client, real redis-server and external NATS servers started on free
// ports, and runners for SDK processes (Python, Node). It must only be
// imported by tests and benchmark harnesses.
package bustest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// Line is any line the daemon sends (hello, ok, error, message).
type Line struct {
	Op          string          `json:"op"`
	ID          string          `json:"id,omitempty"`
	Sub         string          `json:"sub,omitempty"`
	Channel     string          `json:"channel,omitempty"`
	MsgID       string          `json:"msg_id,omitempty"`
	From        string          `json:"from,omitempty"`
	Node        string          `json:"node,omitempty"`
	Time        string          `json:"time,omitempty"`
	Seq         uint64          `json:"seq,omitempty"`
	Ack         string          `json:"ack,omitempty"`
	Redelivered bool            `json:"redelivered,omitempty"`
	Durable     bool            `json:"durable,omitempty"`
	Code        string          `json:"code,omitempty"`
	Error       string          `json:"error,omitempty"`
	Hint        string          `json:"hint,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Protocol    int             `json:"protocol,omitempty"`
	Project     string          `json:"project,omitempty"`
	Agent       string          `json:"agent,omitempty"`
	MaxPayload  int64           `json:"max_payload,omitempty"`
}

// ErrorLine is an "error" reply.
type ErrorLine struct{ Line }

func (e *ErrorLine) Error() string { return e.Code + ": " + e.Line.Error }

// Client speaks the wire protocol over one connection. Requests are
// synchronous; message lines that arrive while waiting for a reply are
// kept for Next.
type Client struct {
	conn  net.Conn
	r     *bufio.Reader
	Hello Line

	mu     sync.Mutex
	nextID int
	queued []Line
}

// Dial connects to an agent socket and reads the hello line.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, r: bufio.NewReaderSize(conn, 1<<16)}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	hello, err := c.read()
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, err
	}
	if hello.Op != "hello" {
		conn.Close()
		if hello.Op == "error" {
			return nil, &ErrorLine{hello}
		}
		return nil, fmt.Errorf("first line is %q, not hello", hello.Op)
	}
	c.Hello = hello
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection.
func (c *Client) Conn() net.Conn { return c.conn }

func (c *Client) read() (Line, error) {
	b, err := c.r.ReadBytes('\n')
	if err != nil {
		return Line{}, err
	}
	var l Line
	if err := json.Unmarshal(b, &l); err != nil {
		return Line{}, fmt.Errorf("decode %q: %w", b, err)
	}
	return l, nil
}

// SendRaw writes bytes as they are.
func (c *Client) SendRaw(b []byte) error {
	_, err := c.conn.Write(b)
	return err
}

// Request sends req (an "id" is added) and waits for its ok or error.
func (c *Client) Request(req map[string]any) (Line, error) {
	c.mu.Lock()
	c.nextID++
	id := strconv.Itoa(c.nextID)
	c.mu.Unlock()
	req["id"] = id
	b, err := json.Marshal(req)
	if err != nil {
		return Line{}, err
	}
	if err := c.SendRaw(append(b, '\n')); err != nil {
		return Line{}, err
	}
	return c.waitReply(id)
}

func (c *Client) waitReply(id string) (Line, error) {
	for {
		l, err := c.read()
		if err != nil {
			return Line{}, err
		}
		if l.Op == "message" {
			c.queued = append(c.queued, l)
			continue
		}
		if l.ID != id {
			if l.Op == "error" && l.ID == "" {
				return l, &ErrorLine{l}
			}
			continue
		}
		if l.Op == "error" {
			return l, &ErrorLine{l}
		}
		return l, nil
	}
}

// Publish publishes payload (any JSON-encodable value).
func (c *Client) Publish(channel string, payload any) (Line, error) {
	return c.Request(map[string]any{"op": "publish", "channel": channel, "payload": payload})
}

// Subscribe subscribes and returns the subscription id.
func (c *Client) Subscribe(channel string) (Line, error) {
	return c.Request(map[string]any{"op": "subscribe", "channel": channel})
}

// Ack acknowledges a durable message (fire and forget).
func (c *Client) Ack(token string) error {
	return c.SendRaw([]byte(`{"op":"ack","ack":"` + token + `"}` + "\n"))
}

// Next returns the next message line, waiting up to timeout.
func (c *Client) Next(timeout time.Duration) (Line, error) {
	if len(c.queued) > 0 {
		l := c.queued[0]
		c.queued = c.queued[1:]
		return l, nil
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	for {
		l, err := c.read()
		if err != nil {
			return Line{}, err
		}
		switch l.Op {
		case "message":
			return l, nil
		case "error":
			return l, &ErrorLine{l}
		}
	}
}

// IsTimeout reports whether err is a read deadline expiring.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
