package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

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

type apiObject struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
}

type apiStatus struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
}

// Get reports whether o exists and its resourceVersion.
func (c *Cluster) Get(ctx context.Context, o Object) (string, bool, error) {
	resp, body, err := c.do(ctx, http.MethodGet, objectPath(o), "", "", nil)
	if err != nil {
		return "", false, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return "", false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return "", false, statusErr(c, "get", o, resp, body)
	}
	var obj apiObject
	if err := json.Unmarshal(body, &obj); err != nil {
		return "", false, err
	}
	return obj.Metadata.ResourceVersion, true, nil
}

// Apply server-side applies o (field manager cortex, conflicts forced,
// unknown fields refused) and says whether it was created, changed or
// left as it was (a second apply of the same objects changes nothing, so
// the server keeps their resourceVersion).
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
	var after apiObject
	if err := json.Unmarshal(out, &after); err != nil {
		return res, err
	}
	switch {
	case !exists:
		res.Outcome = Created
	case after.Metadata.ResourceVersion == before:
		res.Outcome = Unchanged
	default:
		res.Outcome = Configured
	}
	return res, nil
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
	cat := errdefs.FromHTTPStatus(resp.StatusCode)
	if resp.StatusCode == http.StatusUnprocessableEntity {
		cat = errdefs.InvalidArgument
	}
	e := errdefs.New(cat, "%s %s %s/%s on %s: %s (%s)", op, o.GVK().Kind, o.Meta().Namespace, o.Meta().Name, c.Context, msg, resp.Status)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return errdefs.WithHint(e, "the context's credentials were refused; check kubectl --context "+c.Context+" auth whoami")
	case resp.StatusCode == http.StatusForbidden:
		return errdefs.WithHint(e, "the context's user lacks permission; kubectl --context "+c.Context+" auth can-i patch "+o.GVK().Resource)
	case o.GVK().Kind == "Job" && strings.Contains(msg, "immutable"):
		return errdefs.WithHint(e, fmt.Sprintf("a Job's pod template cannot change; delete it first: kubectl -n %s delete job %s", o.Meta().Namespace, o.Meta().Name))
	}
	return e
}
