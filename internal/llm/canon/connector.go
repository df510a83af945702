package canon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Connector speaks one provider's wire protocol. It is the extension point
// for new providers; implementations must be safe for concurrent use.
type Connector interface {
	// Chat sends req for model upstream, streamed when req.Stream is set
	// (a non-streamed answer is returned as a stream of its events too).
	// It returns once the upstream accepted the request (status 2xx);
	// failures are *UpstreamError. The stream ends with io.EOF and must be
	// closed; cancelling ctx aborts it.
	Chat(ctx context.Context, model string, req *Request) (Stream, error)
	// Embed computes one vector per input. A provider without embeddings
	// returns an error for which errors.Is(err, ErrUnsupported) holds.
	Embed(ctx context.Context, model string, req *EmbedRequest) (*EmbedResponse, error)
}

// Stream is a connector's answer, event by event.
type Stream interface {
	// Next returns the next event, io.EOF after the last one, or the
	// error that broke the stream (an *UpstreamError for errors the
	// upstream reported).
	Next() (Event, error)
	// Close releases the upstream connection; it is safe to call twice.
	Close() error
}

// ErrUnsupported marks an operation a provider does not offer.
var ErrUnsupported = errors.New("not supported by this provider")

// UpstreamError is a failure of one upstream call. It never carries the
// provider key: messages are scrubbed before they are stored.
type UpstreamError struct {
	Provider   string
	Status     int // HTTP status; 0 for transport errors
	Type       string
	Message    string
	RetryAfter time.Duration
	Timeout    bool
	Err        error
}

func (e *UpstreamError) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	switch {
	case e.Timeout:
		b.WriteString(": timed out")
	case e.Status != 0:
		fmt.Fprintf(&b, ": upstream status %d", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	} else if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// Retryable reports whether the failure is worth another try on the same
// target.
func (e *UpstreamError) Retryable() bool {
	if e.Timeout || e.Status == 0 {
		return true
	}
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests, 529:
		return true
	}
	return e.Status >= 500
}

// ClientFault reports whether the request itself is wrong: another target would refuse it
// too, so the error goes back to the caller without fallback.
func (e *UpstreamError) ClientFault() bool {
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// Provider is one configured upstream account, shared by its connector.
type Provider struct {
	Name    string
	Kind    string
	BaseURL string
	Key     Secret
	Headers map[string]string
	Client  *http.Client
}

// Scrub removes the provider key from s.
func (p *Provider) Scrub(s string) string {
	if k := p.Key.Reveal(); k != "" {
		s = strings.ReplaceAll(s, k, "[redacted]")
	}
	return s
}

// Post sends body as JSON and returns the response when it is 2xx; any
// other outcome is an *UpstreamError.
func (p *Provider) Post(ctx context.Context, url string, body any, auth func(http.Header)) (*http.Response, error) {
	buf, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode request for %s: %w", p.Name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(buf))
	if err != nil {
		return nil, &UpstreamError{Provider: p.Name, Err: errors.New("bad upstream URL"), Status: http.StatusBadGateway}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cortex-llm-gateway")
	for k, v := range p.Headers {
		req.Header.Set(k, v)
	}
	auth(req.Header)
	resp, err := p.Client.Do(req)
	if err != nil {
		return nil, p.transportError(ctx, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, p.statusError(resp)
	}
	return resp, nil
}

// transportError classifies a network failure. The error text of net/http
// contains the URL, which for Gemini may hold a key query parameter; it is
// scrubbed like any message.
func (p *Provider) transportError(ctx context.Context, err error) *UpstreamError {
	e := &UpstreamError{Provider: p.Name, Message: p.Scrub(errText(err))}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		e.Timeout = true
		e.Message = ""
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		e.Err = context.Canceled
	}
	return e
}

// errText drops the method and URL *url.Error puts in front of the cause.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err.Error()
	}
	return err.Error()
}

// statusError reads a non-2xx answer. Messages of authentication errors are
// dropped entirely: providers echo (parts of) the key in them.
func (p *Provider) statusError(resp *http.Response) *UpstreamError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &UpstreamError{Provider: p.Name, Status: resp.StatusCode, RetryAfter: RetryAfter(resp.Header)}
	e.Type, e.Message = ParseErrorBody(body)
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		e.Message = "the provider refused the gateway's credentials; check the key configured for " + p.Name
	}
	e.Message = Truncate(p.Scrub(e.Message), 500)
	return e
}

// ParseErrorBody understands the error bodies of OpenAI ({"error":{...}}),
// Anthropic ({"type":"error","error":{...}}), Gemini ({"error":{"status"}})
// and servers that answer {"error":"text"}.
func ParseErrorBody(body []byte) (typ, msg string) {
	var v struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &v) == nil && len(v.Error) > 0 {
		var obj struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Message string `json:"message"`
		}
		if json.Unmarshal(v.Error, &obj) == nil {
			if obj.Type == "" {
				obj.Type = obj.Status
			}
			return obj.Type, obj.Message
		}
		var s string
		if json.Unmarshal(v.Error, &s) == nil {
			return "", s
		}
	}
	return "", strings.TrimSpace(string(body))
}

func RetryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// NewID returns prefix followed by 24 random base64url characters.
func NewID(prefix string) string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// QueueStream adapts a producer that turns one upstream item into zero or
// more events: the shared shape of every connector's stream.
type QueueStream struct {
	Body    io.Closer
	SSE     *SSEReader // when set, its buffered input counts as ready
	pending []Event
	Fill    func() ([]Event, error) // next batch; io.EOF at the end
	done    bool
}

func (q *QueueStream) Next() (Event, error) {
	for len(q.pending) == 0 {
		if q.done {
			return Event{}, io.EOF
		}
		evs, err := q.Fill()
		if err != nil {
			if errors.Is(err, io.EOF) {
				q.done = true
				continue
			}
			return Event{}, err
		}
		q.pending = evs
	}
	ev := q.pending[0]
	q.pending = q.pending[1:]
	return ev, nil
}

// Ready reports whether Next can return without waiting on the network.
func (q *QueueStream) Ready() bool {
	return len(q.pending) > 0 || (q.SSE != nil && q.SSE.buffered())
}

func (q *QueueStream) Close() error {
	if q.Body == nil {
		return nil
	}
	err := q.Body.Close()
	q.Body = nil
	return err
}

// SliceStream replays fixed events (a non-streamed answer, a cache hit).
func SliceStream(evs []Event) Stream {
	return &QueueStream{pending: evs, done: true}
}

// ReadStreamErr turns an error from reading an upstream body into an
// *UpstreamError, keeping cancellation recognisable.
func (p *Provider) ReadStreamErr(ctx context.Context, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &UpstreamError{Provider: p.Name, Message: "upstream closed the stream early"}
	}
	return p.transportError(ctx, err)
}

// DecodeBody reads a whole JSON answer into v.
func (p *Provider) DecodeBody(ctx context.Context, resp *http.Response, v any) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return p.ReadStreamErr(ctx, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &UpstreamError{Provider: p.Name, Status: http.StatusBadGateway, Message: "upstream answered invalid JSON: " + Truncate(p.Scrub(err.Error()), 200)}
	}
	return nil
}

// ObjectArgs parses a tool call's arguments text as a JSON object, for
// providers that carry arguments as objects.
func ObjectArgs(args string) (json.RawMessage, error) {
	a := strings.TrimSpace(args)
	if a == "" {
		return json.RawMessage("{}"), nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(a), &m); err != nil || m == nil {
		return nil, fmt.Errorf("tool call arguments are not a JSON object: %s", Truncate(a, 80))
	}
	return json.RawMessage(a), nil
}

// ParseDataURL splits data:<media>;base64,<data>.
func ParseDataURL(u string) (media, data string, ok bool) {
	rest, found := strings.CutPrefix(u, "data:")
	if !found {
		return "", "", false
	}
	meta, payload, found := strings.Cut(rest, ",")
	if !found || !strings.HasSuffix(meta, ";base64") {
		return "", "", false
	}
	return strings.TrimSuffix(meta, ";base64"), payload, true
}

// InvalidRequest is an error the request itself caused, reported to the
// caller as 400 without contacting any other target.
type InvalidRequest struct{ Msg string }

func (e *InvalidRequest) Error() string { return e.Msg }

func BadRequest(format string, args ...any) error {
	return &InvalidRequest{Msg: fmt.Sprintf(format, args...)}
}

// CheckPortable refuses a request holding provider-native tools or content
// another family cannot take (an Anthropic server tool or document sent to
// Gemini), rather than silently dropping them.
func CheckPortable(req *Request, family string) error {
	for _, t := range req.Tools {
		if len(t.Raw) > 0 && t.Family != family {
			return BadRequest("tool %q is a %s server tool; it cannot be sent to a %s model", t.Name, t.Family, family)
		}
	}
	for _, m := range req.Messages {
		for _, p := range m.Parts {
			if p.Type == PartRaw && p.Required && p.Family != family {
				return BadRequest("a %s content block of this conversation cannot be sent to a %s model", p.Family, family)
			}
		}
	}
	return nil
}

// SetOpt sets m[key] to *v when v is set.
func SetOpt[T any](m map[string]any, key string, v *T) {
	if v != nil {
		m[key] = *v
	}
}
