package kube

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
)

// getSecret reads a Secret's data (nil, false when it does not exist).
func (c *Cluster) getSecret(ctx context.Context, ns, name string) (map[string][]byte, bool, error) {
	s := &Secret{Metadata: ObjectMeta{Name: name, Namespace: ns}}
	resp, body, err := c.do(ctx, http.MethodGet, objectPath(s), "", "", nil)
	if err != nil {
		return nil, false, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, statusErr(c, "get", s, resp, body)
	}
	var got Secret
	if err := json.Unmarshal(body, &got); err != nil {
		return nil, false, err
	}
	if got.Data == nil {
		got.Data = map[string][]byte{}
	}
	return got.Data, true, nil
}

// SecretsOptions say which Secrets a project needs.
type SecretsOptions struct {
	Namespace, SystemNamespace, Project string
	// LLMAgents get a token each in cortex-llm-tokens.
	LLMAgents []string
	DryRun    bool
}

// EnsureSecrets creates what a project needs and render never writes:
// the bus token (copied from the system namespace, where the Helm chart
// made it) and one random LLM gateway token per agent that uses it
// (existing tokens are kept). It returns what it did and warnings.
func (c *Cluster) EnsureSecrets(ctx context.Context, o SecretsOptions) ([]Applied, []string, error) {
	var done []Applied
	var warns []string
	apply := func(s *Secret) error {
		s.TypeMeta = meta(gvkSecret)
		s.Type = "Opaque"
		s.Metadata.Namespace = o.Namespace
		s.Metadata.Labels = map[string]string{LabelManagedBy: "cortex", LabelProject: o.Project}
		a, err := c.Apply(ctx, s, ApplyOptions{DryRun: o.DryRun})
		if err != nil {
			return err
		}
		done = append(done, a)
		return nil
	}
	if _, ok, err := c.getSecret(ctx, o.Namespace, SecretBusToken); err != nil {
		return done, warns, err
	} else if !ok {
		src, found, err := c.getSecret(ctx, o.SystemNamespace, SecretBusToken)
		switch {
		case err != nil:
			warns = append(warns, fmt.Sprintf("cannot read Secret %s/%s (%v); bus sidecars need Secret %s in %s", o.SystemNamespace, SecretBusToken, err, SecretBusToken, o.Namespace))
		case !found:
			warns = append(warns, fmt.Sprintf("no Secret %s/%s: install the Helm chart deploy/helm/cortex first; bus sidecars need its token", o.SystemNamespace, SecretBusToken))
		default:
			if err := apply(&Secret{Metadata: ObjectMeta{Name: SecretBusToken}, Data: map[string][]byte{"token": src["token"]}}); err != nil {
				return done, warns, err
			}
		}
	}
	if len(o.LLMAgents) > 0 {
		have, _, err := c.getSecret(ctx, o.Namespace, SecretLLMTokens)
		if err != nil {
			return done, warns, err
		}
		data := map[string][]byte{}
		missing := false
		agents := append([]string(nil), o.LLMAgents...)
		sort.Strings(agents)
		for _, a := range agents {
			if t, ok := have[a]; ok {
				data[a] = t
				continue
			}
			var b [32]byte
			if _, err := rand.Read(b[:]); err != nil {
				return done, warns, err
			}
			data[a] = []byte("cx-" + base64.RawURLEncoding.EncodeToString(b[:]))
			missing = true
		}
		if missing {
			if err := apply(&Secret{Metadata: ObjectMeta{Name: SecretLLMTokens}, Data: data}); err != nil {
				return done, warns, err
			}
		}
		if _, ok, err := c.getSecret(ctx, o.Namespace, SecretLLMKeys); err == nil && !ok {
			warns = append(warns, fmt.Sprintf("no Secret %s/%s: the LLM gateway needs it (one key per api_key_env of the LLM config; see docs/cluster.md)", o.Namespace, SecretLLMKeys))
		}
	}
	return done, warns, nil
}
