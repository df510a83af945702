// Package llmtest runs fake LLM provider servers on loopback for tests and
// benchmarks of the gateway. Each fake speaks its provider's real wire
// format (OpenAI chat completions with SSE ending in data: [DONE];
// Anthropic messages with typed SSE events; Gemini generateContent and
// streamGenerateContent?alt=sse), checks authentication and the request
// rules the real APIs enforce, answers from a script of Replies and records
// every request it receives. It must not be imported by non-test code
// other than benchmark harnesses.
package llmtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Kind is the wire format a fake speaks.
type Kind string

const (
	OpenAI    Kind = "openai"
	Anthropic Kind = "anthropic"
	Gemini    Kind = "gemini"
)

// ToolCall is a function call a fake answers with. Args is JSON text.
type ToolCall struct {
	ID, Name, Args string
}

// Usage is reported the way the provider reports it: for Anthropic, Input
// excludes CacheRead and CacheWrite; for OpenAI and Gemini, Input includes
// CacheRead.
type Usage struct {
	Input, Output, CacheRead, CacheWrite int64
}

// Reply scripts one answer.
type Reply struct {
	Text      string
	ToolCalls []ToolCall
	// Finish is the provider's own finish reason; empty picks the usual
	// one (stop, end_turn, STOP; tool_calls or tool_use with tool calls).
	Finish string
	Usage  Usage
	// Status, when not 0 or 200, answers with an error in the provider's
	// format; ErrorMessage is its message ("{key}" is replaced by the API
	// key the request carried, the way providers echo keys).
	Status       int
	ErrorMessage string
	RetryAfter   string
	// Chunks splits Text into that many stream deltas (default: by word).
	Chunks int
	// FailBeforeFirstToken starts a 200 stream, sends its opening event,
	// then cuts the connection before any content.
	FailBeforeFirstToken bool
	// FailAfterChunks cuts the connection after that many text deltas.
	FailAfterChunks int
	// ErrorEventAfterChunks sends the provider's in-stream error event
	// after that many text deltas (Anthropic and OpenAI).
	ErrorEventAfterChunks int
	Delay                 time.Duration // before the answer
	ChunkDelay            time.Duration // between stream events
	// PromptBlocked (Gemini) answers with promptFeedback.blockReason and
	// no candidates.
	PromptBlocked string
}

// Request is a request a fake received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// JSON decodes the body.
func (r Request) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// Server is a fake provider.
type Server struct {
	Kind Kind
	// URL is the base URL to configure for the provider (…/v1 for OpenAI
	// and Anthropic, …/v1beta for Gemini).
	URL string
	Key string

	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []Request
	count  int
	queue  []Reply
	def    Reply
	record bool
}

// Start runs a fake of kind on loopback that accepts key ("" accepts any
// or none, as a local OpenAI-compatible server does). Close stops it.
func Start(kind Kind, key string) *Server {
	s := &Server{Kind: kind, Key: key, record: true, def: Reply{Text: "Hello from the fake " + string(kind) + ".", Usage: Usage{Input: 12, Output: 7}}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	switch kind {
	case Gemini:
		s.URL = s.srv.URL + "/v1beta"
	default:
		s.URL = s.srv.URL + "/v1"
	}
	return s
}

// New is Start for tests: the fake is closed when tb ends.
func New(tb testing.TB, kind Kind, key string) *Server {
	tb.Helper()
	s := Start(kind, key)
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// Push queues replies, used in order before the default.
func (s *Server) Push(r ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, r...)
}

// SetDefault sets the reply used when the queue is empty.
func (s *Server) SetDefault(r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def = r
}

// SetRecord turns request recording on or off (benchmarks turn it off).
func (s *Server) SetRecord(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record = on
}

// Requests returns the requests received so far (the chat and embeddings
// calls, authenticated or not).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Count is the number of requests received.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Last returns the last request received; ok is false when none.
func (s *Server) Last() (Request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return Request{}, false
	}
	return s.reqs[len(s.reqs)-1], true
}

func (s *Server) next() Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		r := s.queue[0]
		s.queue = s.queue[1:]
		return r
	}
	return s.def
}

// reply takes the next scripted Reply, waits out its Delay and answers a
// scripted error status (with its Retry-After) through fail, in the
// provider's format; key is the API key the request carried, for
// ErrorMessage's {key}. ok is false when the request has been answered or
// its client is gone.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, key string, fail func(status int, msg string)) (rep Reply, ok bool) {
	rep = s.next()
	if rep.Delay > 0 {
		select {
		case <-time.After(rep.Delay):
		case <-r.Context().Done():
			return rep, false
		}
	}
	if rep.Status != 0 && rep.Status != http.StatusOK {
		if rep.RetryAfter != "" {
			w.Header().Set("Retry-After", rep.RetryAfter)
		}
		fail(rep.Status, errMessage(rep, key))
		return rep, false
	}
	return rep, true
}

// textDeltas streams chunks through send, cutting the connection after
// rep.FailAfterChunks of them, or sending errorEvent (when there is one)
// after rep.ErrorEventAfterChunks; it reports false after an error event.
func textDeltas(rep Reply, chunks []string, send func(i int, text string), errorEvent func()) bool {
	for i, part := range chunks {
		if rep.FailAfterChunks > 0 && i == rep.FailAfterChunks {
			cut()
		}
		if errorEvent != nil && rep.ErrorEventAfterChunks > 0 && i == rep.ErrorEventAfterChunks {
			errorEvent()
			return false
		}
		send(i, part)
	}
	return true
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body := readAll(r)
	s.mu.Lock()
	s.count++
	if s.record {
		s.reqs = append(s.reqs, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
	}
	s.mu.Unlock()
	if r.Method == http.MethodGet && (r.URL.Path == "/v1/models" || r.URL.Path == "/v1beta/models") {
		s.serveModels(w, r)
		return
	}
	switch s.Kind {
	case OpenAI:
		s.serveOpenAI(w, r, body)
	case Anthropic:
		s.serveAnthropic(w, r, body)
	case Gemini:
		s.serveGemini(w, r, body)
	}
}

// serveModels answers the providers' model list (GET /v1/models,
// /v1beta/models) after checking the key as the provider does.
func (s *Server) serveModels(w http.ResponseWriter, r *http.Request) {
	var got string
	switch s.Kind {
	case Anthropic:
		got = r.Header.Get("x-api-key")
	case Gemini:
		got = r.Header.Get("x-goog-api-key")
		if got == "" {
			got = r.URL.Query().Get("key")
		}
	default:
		got = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if s.Key != "" && got != s.Key {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"message": "invalid api key", "type": "authentication_error"}})
		return
	}
	switch s.Kind {
	case Gemini:
		writeJSON(w, http.StatusOK, map[string]any{"models": []any{map[string]any{"name": "models/gemini-2.0-flash"}}})
	case Anthropic:
		writeJSON(w, http.StatusOK, map[string]any{"data": []any{map[string]any{"id": "claude-3-5-haiku-latest", "type": "model"}}})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{map[string]any{"id": "gpt-4o-mini", "object": "model"}}})
	}
}

func readAll(r *http.Request) []byte {
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return []byte(b.String())
}

// words splits text into n deltas (by word when n is 0).
func words(text string, n int) []string {
	if text == "" {
		return nil
	}
	if n <= 0 {
		var out []string
		start := 0
		for i := 1; i < len(text); i++ {
			if text[i] == ' ' {
				out = append(out, text[start:i])
				start = i
			}
		}
		return append(out, text[start:])
	}
	if n > len(text) {
		n = len(text)
	}
	out := make([]string, 0, n)
	size := (len(text) + n - 1) / n
	for i := 0; i < len(text); i += size {
		end := i + size
		if end > len(text) {
			end = len(text)
		}
		out = append(out, text[i:end])
	}
	return out
}

func splitHalf(s string) []string {
	if len(s) < 2 {
		return []string{s}
	}
	return []string{s[:len(s)/2], s[len(s)/2:]}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// sse writes one event and flushes.
func sse(w http.ResponseWriter, event string, v any, delay time.Duration) {
	if delay > 0 {
		time.Sleep(delay)
	}
	var data []byte
	switch x := v.(type) {
	case string:
		data = []byte(x)
	default:
		data, _ = json.Marshal(v)
	}
	if event != "" {
		fmt.Fprintf(w, "event: %s\n", event)
	}
	fmt.Fprintf(w, "data: %s\n\n", data)
	w.(http.Flusher).Flush()
}

func startSSE(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

// cut aborts the response mid-stream: the client sees the body end
// without its terminating chunk (an unexpected EOF).
func cut() { panic(http.ErrAbortHandler) }

func errMessage(rep Reply, key string) string {
	msg := rep.ErrorMessage
	if msg == "" {
		msg = fmt.Sprintf("fake upstream error %d", rep.Status)
	}
	return strings.ReplaceAll(msg, "{key}", key)
}

func asMap(v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	return m, ok
}

func asList(v any) ([]any, bool) {
	l, ok := v.([]any)
	return l, ok
}
