package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logs"
)

// Client talks to cortexd: over its unix socket, or over TLS to a remote
// daemon (NewRemoteClient).
type Client struct {
	// Addr is what it talks to (a socket path or https://HOST:PORT).
	Addr   string
	base   string
	hc     *http.Client
	apiKey string
	remote bool
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{Addr: socket, base: "http://cortexd", hc: &http.Client{Transport: tr}}
}

// RemoteOptions name a remote daemon and the credentials for it.
type RemoteOptions struct {
	// URL is https://HOST:PORT.
	URL string
	// CA is a PEM file of the CA the daemon's certificate chains to
	// ("" = the system's roots).
	CA string
	// Cert and Key are a client certificate and its key (PEM files).
	Cert, Key string
	// APIKey is sent as Authorization: Bearer.
	APIKey string
}

// NewRemoteClient returns a client for a daemon's TCP listener: TLS 1.3,
// the daemon's certificate checked against CA, with an API key or a
// client certificate.
func NewRemoteClient(o RemoteOptions) (*Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if o.CA != "" {
		pemBytes, err := os.ReadFile(o.CA)
		if err != nil {
			return nil, errdefs.WithHint(errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("CA file: %w", err)), "CORTEX_CA names the PEM file cortex auth ca prints")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s holds no PEM certificate", o.CA), "save the output of cortex auth ca")
		}
		cfg.RootCAs = pool
	}
	if o.Cert != "" {
		pair, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, errdefs.WithHint(errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("client certificate: %w", err)), "CORTEX_CERT and CORTEX_KEY name the files cortex auth cert issue wrote")
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	tr := &http.Transport{
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        4,
		IdleConnTimeout:     30 * time.Second,
		Proxy:               http.ProxyFromEnvironment,
	}
	return &Client{Addr: o.URL, base: strings.TrimSuffix(o.URL, "/"), hc: &http.Client{Transport: tr}, apiKey: o.APIKey, remote: true}, nil
}

// SetAPIKey makes the client send an API key (also over the unix socket,
// where it stands instead of the caller's uid).
func (c *Client) SetAPIKey(k string) { c.apiKey = k }

// Remote reports whether the daemon is reached over TCP: paths on this
// machine mean nothing to it.
func (c *Client) Remote() bool { return c.remote }

func (c *Client) url(path string, q url.Values) string {
	u := c.base + "/" + Version + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// Do sends a request and decodes a JSON answer into out (if non-nil).
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, body io.Reader, out any) error {
	resp, err := c.send(ctx, method, path, q, body, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, q url.Values, body io.Reader, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		hint := "start it with `cortexd` (or `systemctl start cortexd`), or check CORTEX_ROOT/CORTEX_HOST"
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			hint = "the daemon's certificate did not verify: set CORTEX_CA to the CA cortex auth ca prints on the daemon's host"
		} else if c.remote {
			hint = "check CORTEX_HOST and that the daemon listens there (api.listen), and your credentials (CORTEX_API_KEY or CORTEX_CERT/CORTEX_KEY)"
		}
		return nil, errdefs.WithHint(errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("cannot reach cortexd at %s: %w", c.Addr, unwrapURL(err))), hint)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

// readError turns an error answer into an error of the category its
// ErrorBody names. Every handler under /v1/ answers one; anything else (a
// proxy's page, a truncated body) is an Internal error quoting the status,
// never a category guessed from it.
func readError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb ErrorBody
	if json.Unmarshal(data, &eb) != nil || eb.Error == "" || eb.Category == "" {
		return errdefs.New(errdefs.Internal, "cortexd answered %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	return &errdefs.Error{Cat: errdefs.Category(eb.Category), Msg: eb.Error, Hint: eb.Hint}
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Stream sends a request and returns the open response (for event
// streams); the caller closes its body.
func (c *Client) Stream(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	return c.send(ctx, method, path, q, nil, nil)
}

// Ping reports whether a daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Version(ctx)
	return err
}

// Version asks the daemon who it is.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var v VersionInfo
	return v, c.Do(ctx, http.MethodGet, "/version", nil, nil, &v)
}

// Run uploads a bundle and starts its project. sourceDir is the project
// directory it was made from ("" for a bundle file).
func (c *Client) Run(ctx context.Context, bundle io.Reader, size int64, sourceDir, name string) (RunResponse, error) {
	return c.RunWith(ctx, bundle, size, RunRequest{SourceDir: sourceDir, Name: name})
}

// RunRequest is what a run asks for beyond its bundle; each field is
// one header of POST /v1/projects.
type RunRequest struct {
	SourceDir string // HeaderSourceDir
	Name      string // HeaderFilename
	// LLMMode and LLMCassette: HeaderLLMMode, HeaderLLMCassette.
	LLMMode, LLMCassette string
	// Learn: HeaderLearn.
	Learn bool
}

// RunWith is Run with the options of req.
func (c *Client) RunWith(ctx context.Context, bundle io.Reader, size int64, req RunRequest) (RunResponse, error) {
	var out RunResponse
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/vnd.cortex.bundle")
	for k, v := range map[string]string{HeaderSourceDir: req.SourceDir, HeaderFilename: req.Name, HeaderLLMMode: req.LLMMode, HeaderLLMCassette: req.LLMCassette} {
		if v != "" {
			hdr.Set(k, v)
		}
	}
	if req.Learn {
		hdr.Set(HeaderLearn, "1")
	}
	resp, err := c.send(ctx, http.MethodPost, "/projects", nil, sizedReader(bundle, size), hdr)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

func sizedReader(r io.Reader, n int64) io.Reader {
	if n <= 0 {
		return r
	}
	return io.LimitReader(r, n)
}

// Projects lists projects.
func (c *Client) Projects(ctx context.Context) ([]ProjectSummary, error) {
	var out []ProjectSummary
	return out, c.Do(ctx, http.MethodGet, "/projects", nil, nil, &out)
}

// Agents lists agents; all includes ended ones.
func (c *Client) Agents(ctx context.Context, project string, all bool) ([]AgentStatus, error) {
	q := url.Values{}
	if project != "" {
		q.Set("project", project)
	}
	if all {
		q.Set("all", "1")
	}
	var out []AgentStatus
	return out, c.Do(ctx, http.MethodGet, "/agents", q, nil, &out)
}

// Resolve turns "project/agent" or an unambiguous "agent" into a ref.
func (c *Client) Resolve(ctx context.Context, ref string) (AgentRef, error) {
	var out AgentRef
	return out, c.Do(ctx, http.MethodGet, "/agents/resolve", url.Values{"ref": {ref}}, nil, &out)
}

func agentPath(r AgentRef, verb string) string {
	p := "/agents/" + url.PathEscape(r.Project) + "/" + url.PathEscape(r.Agent)
	if verb != "" {
		p += "/" + verb
	}
	return p
}

// Inspect returns everything about one agent.
func (c *Client) Inspect(ctx context.Context, r AgentRef) (Inspection, error) {
	var out Inspection
	return out, c.Do(ctx, http.MethodGet, agentPath(r, ""), nil, nil, &out)
}

// Kill stops an agent (SIGTERM, SIGKILL after grace; 0 = daemon default).
func (c *Client) Kill(ctx context.Context, r AgentRef, grace time.Duration) error {
	return c.Do(ctx, http.MethodPost, agentPath(r, "kill"), graceQuery(grace), nil, nil)
}

// Suspend freezes an agent.
func (c *Client) Suspend(ctx context.Context, r AgentRef) error {
	return c.Do(ctx, http.MethodPost, agentPath(r, "suspend"), nil, nil, nil)
}

// Resume thaws an agent.
func (c *Client) Resume(ctx context.Context, r AgentRef) error {
	return c.Do(ctx, http.MethodPost, agentPath(r, "resume"), nil, nil, nil)
}

// Stop kills every agent of a project.
func (c *Client) Stop(ctx context.Context, project string, grace time.Duration) error {
	return c.Do(ctx, http.MethodPost, "/projects/"+url.PathEscape(project)+"/stop", graceQuery(grace), nil, nil)
}

// Remove deletes a project; force stops it first.
func (c *Client) Remove(ctx context.Context, project string, force bool) error {
	q := url.Values{}
	if force {
		q.Set("force", "1")
	}
	return c.Do(ctx, http.MethodDelete, "/projects/"+url.PathEscape(project), q, nil, nil)
}

func graceQuery(g time.Duration) url.Values {
	if g <= 0 {
		return nil
	}
	return url.Values{"grace": {g.String()}}
}

// LogsQuery selects records for Logs.
type LogsQuery struct {
	Project, Agent string
	Tail           int
	Since          time.Time
	Follow         bool
}

// Logs streams records to fn.
func (c *Client) Logs(ctx context.Context, lq LogsQuery, fn func(logs.Record) error) error {
	q := url.Values{"project": {lq.Project}}
	if lq.Agent != "" {
		q.Set("agent", lq.Agent)
	}
	if lq.Tail > 0 {
		q.Set("tail", strconv.Itoa(lq.Tail))
	}
	if !lq.Since.IsZero() {
		q.Set("since", lq.Since.UTC().Format(time.RFC3339Nano))
	}
	if lq.Follow {
		q.Set("follow", "1")
	}
	resp, err := c.send(ctx, http.MethodGet, "/logs", q, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = ReadSSE(resp.Body, func(event string, data []byte) error {
		if event != "log" {
			return nil
		}
		var rec logs.Record
		if err := json.Unmarshal(data, &rec); err != nil {
			return err
		}
		return fn(rec)
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Attach follows a project: its output and state changes, until every
// agent has ended for good.
func (c *Client) Attach(ctx context.Context, project string, since time.Time, onLog func(logs.Record), onEvent func(Event)) (AttachEnd, error) {
	var end AttachEnd
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	resp, err := c.send(ctx, http.MethodGet, "/projects/"+url.PathEscape(project)+"/attach", q, nil, nil)
	if err != nil {
		return end, err
	}
	defer resp.Body.Close()
	got := false
	err = ReadSSE(resp.Body, func(event string, data []byte) error {
		switch event {
		case "log":
			var rec logs.Record
			if json.Unmarshal(data, &rec) == nil && onLog != nil {
				onLog(rec)
			}
		case "state":
			var ev Event
			if json.Unmarshal(data, &ev) == nil && onEvent != nil {
				onEvent(ev)
			}
		case "end":
			got = true
			return json.Unmarshal(data, &end)
		}
		return nil
	})
	if err != nil {
		return end, err
	}
	if !got {
		if ctx.Err() != nil {
			return end, ctx.Err()
		}
		return end, errdefs.New(errdefs.Unavailable, "the daemon closed the attach stream")
	}
	return end, nil
}
