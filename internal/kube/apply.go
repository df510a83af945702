package kube

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// FieldManager is the server-side apply field manager of cortex deploy.
const FieldManager = "cortex"

// Outcome is what an apply did to one object.
type Outcome string

const (
	Created    Outcome = "created"
	Configured Outcome = "configured"
	Unchanged  Outcome = "unchanged"
	// Replaced: a Job whose pod template changed (templates of Jobs are
	// immutable) was deleted, its pods with it, and created again.
	Replaced Outcome = "replaced"
)

// Applied is one object's result.
type Applied struct {
	Kind, Namespace, Name string
	Outcome               Outcome
	// Warnings are the API server's Warning headers (Pod Security,
	// deprecations), one per line.
	Warnings []string
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// DryRun asks the server to validate and admit without persisting.
	DryRun bool
}

// objectPath is the REST path of o.
func objectPath(o Object) string {
	g := o.GVK()
	p := "/api/" + g.Version
	if g.Group != "" {
		p = "/apis/" + g.Group + "/" + g.Version
	}
	m := o.Meta()
	if g.Namespaced {
		p += "/namespaces/" + url.PathEscape(m.Namespace)
	}
	return p + "/" + g.Resource + "/" + url.PathEscape(m.Name)
}

// content is an object as the API returns it, without what the server
// maintains on its own (resourceVersion, managedFields, status): two
// equal contents mean an apply changed nothing.
func content(body []byte) (map[string]any, error) {
	var o map[string]any
	if err := json.Unmarshal(body, &o); err != nil {
		return nil, err
	}
	delete(o, "status")
	if md, ok := o["metadata"].(map[string]any); ok {
		delete(md, "resourceVersion")
		delete(md, "managedFields")
	}
	return o, nil
}

type apiStatus struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
}

// Get returns o as the server has it (nil, false when it does not exist).
func (c *Cluster) Get(ctx context.Context, o Object) ([]byte, bool, error) {
	resp, body, err := c.do(ctx, http.MethodGet, objectPath(o), "", "", nil)
	if err != nil {
		return nil, false, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, statusErr(c, "get", o, resp, body)
	}
	return body, true, nil
}

// Apply server-side applies o (field manager cortex, conflicts forced,
// unknown fields refused) and says whether it was created, changed or
// left as it was: unchanged when the object's content (everything but
// resourceVersion, managedFields and status) is the same before and after.
// A Job whose pod template changed is replaced (deleted, then created).
func (c *Cluster) Apply(ctx context.Context, o Object, opts ApplyOptions) (Applied, error) {
	m := o.Meta()
	res := Applied{Kind: o.GVK().Kind, Namespace: m.Namespace, Name: m.Name}
	before, exists, err := c.Get(ctx, o)
	if err != nil {
		return res, err
	}
	body, err := JSON(o)
	if err != nil {
		return res, err
	}
	res, err = c.apply(ctx, o, body, before, exists, opts)
	if err != nil && exists && o.GVK().Kind == "Job" && strings.Contains(err.Error(), "field is immutable") {
		if opts.DryRun {
			res.Outcome = Replaced
			return res, nil
		}
		if err := c.delete(ctx, o); err != nil {
			return res, err
		}
		res, err = c.apply(ctx, o, body, nil, false, opts)
		if err == nil {
			res.Outcome = Replaced
		}
	}
	return res, err
}

func (c *Cluster) apply(ctx context.Context, o Object, body, before []byte, exists bool, opts ApplyOptions) (Applied, error) {
	m := o.Meta()
	res := Applied{Kind: o.GVK().Kind, Namespace: m.Namespace, Name: m.Name}
	q := url.Values{"fieldManager": {FieldManager}, "force": {"true"}, "fieldValidation": {"Strict"}}
	if opts.DryRun {
		q.Set("dryRun", "All")
	}
	resp, out, err := c.do(ctx, http.MethodPatch, objectPath(o), q.Encode(), "application/apply-patch+yaml", body)
	if err != nil {
		return res, err
	}
	res.Warnings = warnings(resp.Header.Values("Warning"))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return res, statusErr(c, "apply", o, resp, out)
	}
	if !exists {
		res.Outcome = Created
		return res, nil
	}
	a, err := content(out)
	if err != nil {
		return res, err
	}
	b, err := content(before)
	if err != nil {
		return res, err
	}
	res.Outcome = Configured
	if reflect.DeepEqual(a, b) {
		res.Outcome = Unchanged
	}
	return res, nil
}

// delete removes o (dependents in the background) and waits until it is
// gone.
func (c *Cluster) delete(ctx context.Context, o Object) error {
	resp, body, err := c.do(ctx, http.MethodDelete, objectPath(o), "", "application/json", []byte(`{"propagationPolicy":"Background"}`))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNotFound {
		return statusErr(c, "delete", o, resp, body)
	}
	for i := 0; i < 300; i++ {
		if _, ok, err := c.Get(ctx, o); err != nil || !ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errdefs.New(errdefs.Unavailable, "%s %s/%s still exists 30s after its deletion", o.GVK().Kind, o.Meta().Namespace, o.Meta().Name)
}

var warnRe = regexp.MustCompile(`^\d{3} \S+ "(.*)"`)

// warnings unwraps RFC 7234 warning values: 299 - "text".
func warnings(vals []string) []string {
	var out []string
	for _, v := range vals {
		if m := warnRe.FindStringSubmatch(v); m != nil {
			out = append(out, strings.ReplaceAll(m[1], `\"`, `"`))
		} else {
			out = append(out, v)
		}
	}
	return out
}

func statusErr(c *Cluster, op string, o Object, resp *http.Response, body []byte) error {
	var st apiStatus
	_ = json.Unmarshal(body, &st)
	msg := st.Message
	if msg == "" {
		msg = strings.TrimSpace(string(body))
	}
	if len(msg) > 600 { // immutable-field errors quote the whole Go object
		msg = msg[:300] + " ... " + msg[len(msg)-200:]
	}
	cat := categoryOf(resp.StatusCode)
	e := errdefs.New(cat, "%s %s %s/%s on %s: %s (%s)", op, o.GVK().Kind, o.Meta().Namespace, o.Meta().Name, c.Context, msg, resp.Status)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return errdefs.WithHint(e, "the context's credentials were refused; check kubectl --context "+c.Context+" auth whoami")
	case resp.StatusCode == http.StatusForbidden:
		return errdefs.WithHint(e, "the context's user lacks permission; kubectl --context "+c.Context+" auth can-i patch "+o.GVK().Resource)
	}
	return e
}

// categoryOf maps a Kubernetes API server's status (which speaks no
// Cortex error body) to an error category.
func categoryOf(code int) errdefs.Category {
	switch code {
	case http.StatusNotFound:
		return errdefs.NotFound
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return errdefs.InvalidArgument
	case http.StatusConflict:
		return errdefs.AlreadyExists
	case http.StatusPreconditionFailed:
		return errdefs.FailedPrecondition
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return errdefs.Unavailable
	case http.StatusForbidden, http.StatusUnauthorized:
		return errdefs.PermissionDenied
	case http.StatusNotImplemented:
		return errdefs.Unsupported
	}
	return errdefs.Internal
}
