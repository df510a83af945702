package kube

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// apiServer is a TLS server that records the Authorization header and
// answers GETs like the API server (404 for everything).
func apiServer(t *testing.T) (*httptest.Server, *string, string) {
	t.Helper()
	var auth string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if auth != "Bearer good-token" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"kind":"Status","message":"Unauthorized","code":401}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return srv, &auth, base64.StdEncoding.EncodeToString(ca)
}

func writeKubeconfig(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKubeconfig(t *testing.T) {
	srv, auth, ca := apiServer(t)
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "token"), []byte("good-token\n"), 0o600)
	plugin := filepath.Join(dir, "plugin.sh")
	_ = os.WriteFile(plugin, []byte("#!/bin/sh\ncase \"$KUBERNETES_EXEC_INFO\" in *ExecCredential*) ;; *) exit 3;; esac\n"+
		`echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"'"$TOKEN"'"}}'`+"\n"), 0o755)
	first := writeKubeconfig(t, dir, "a", `apiVersion: v1
kind: Config
current-context: file-token
clusters:
- name: c
  cluster: {server: `+srv.URL+`, certificate-authority-data: `+ca+`}
users:
- name: file
  user: {tokenFile: token}
- name: exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: `+plugin+`
      env: [{name: TOKEN, value: good-token}]
- name: provider
  user: {auth-provider: {name: gcp}}
- name: wrong
  user: {token: bad-token}
contexts:
- name: file-token
  context: {cluster: c, user: file}
- name: exec
  context: {cluster: c, user: exec}
- name: provider
  context: {cluster: c, user: provider}
- name: wrong
  context: {cluster: c, user: wrong}
- name: nowhere
  context: {cluster: missing, user: file}
`)
	// A second file: its entries lose to the first file's of the same name.
	second := writeKubeconfig(t, dir, "b", `current-context: exec
clusters:
- name: c
  cluster: {server: https://127.0.0.1:1}
contexts:
- name: only-in-b
  context: {cluster: c, user: wrong}
`)
	ns := &Namespace{TypeMeta: meta(gvkNamespace), Metadata: ObjectMeta{Name: "x"}}
	ctx := context.Background()
	for _, tc := range []struct {
		name, context string
		paths         []string
		wantErr       string
	}{
		{"current context, token file", "", []string{first, second}, ""},
		{"exec plugin", "exec", []string{first}, ""},
		{"merged: second file's context, first file's cluster", "only-in-b", []string{first, second}, "credentials were refused"},
		{"auth provider", "provider", []string{first}, "auth-provider \"gcp\" is not supported"},
		{"unknown context", "nope", []string{first}, "contexts: file-token, exec"},
		{"cluster missing", "nowhere", []string{first}, "names cluster \"missing\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			*auth = ""
			c, err := LoadCluster(ctx, tc.paths, tc.context)
			if err == nil {
				_, _, err = c.Get(ctx, ns)
			}
			if tc.wantErr == "" {
				if err != nil || *auth != "Bearer good-token" {
					t.Fatalf("err %v, server saw %q", err, *auth)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error()+" "+errdefs.HintOf(err), tc.wantErr) {
				t.Fatalf("err %v (hint %q), want %q", err, errdefs.HintOf(err), tc.wantErr)
			}
		})
	}
	t.Setenv("KUBECONFIG", first+string(os.PathListSeparator)+second)
	if got := KubeconfigPaths(""); len(got) != 2 || got[0] != first {
		t.Errorf("KubeconfigPaths from $KUBECONFIG = %v", got)
	}
	if got := KubeconfigPaths("/x"); len(got) != 1 || got[0] != "/x" {
		t.Errorf("explicit kubeconfig = %v", got)
	}
}
