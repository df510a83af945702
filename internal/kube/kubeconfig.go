package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// kubeconfig is the part of a kubeconfig file Cortex reads (unknown
// fields, such as preferences and extensions, are ignored as kubectl
// does).
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string      `yaml:"name"`
		Cluster clusterInfo `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string   `yaml:"name"`
		User userInfo `yaml:"user"`
	} `yaml:"users"`
	Contexts []struct {
		Name    string      `yaml:"name"`
		Context contextInfo `yaml:"context"`
	} `yaml:"contexts"`
}

type clusterInfo struct {
	Server                   string `yaml:"server"`
	CertificateAuthority     string `yaml:"certificate-authority"`
	CertificateAuthorityData string `yaml:"certificate-authority-data"`
	InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
	TLSServerName            string `yaml:"tls-server-name"`
	ProxyURL                 string `yaml:"proxy-url"`
	dir                      string
}

type userInfo struct {
	ClientCertificate     string      `yaml:"client-certificate"`
	ClientCertificateData string      `yaml:"client-certificate-data"`
	ClientKey             string      `yaml:"client-key"`
	ClientKeyData         string      `yaml:"client-key-data"`
	Token                 string      `yaml:"token"`
	TokenFile             string      `yaml:"tokenFile"`
	Username              string      `yaml:"username"`
	Password              string      `yaml:"password"`
	Exec                  *execConfig `yaml:"exec"`
	AuthProvider          *struct {
		Name string `yaml:"name"`
	} `yaml:"auth-provider"`
	dir string
}

type execConfig struct {
	APIVersion string   `yaml:"apiVersion"`
	Command    string   `yaml:"command"`
	Args       []string `yaml:"args"`
	Env        []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	ProvideClusterInfo bool `yaml:"provideClusterInfo"`
}

type contextInfo struct {
	Cluster   string `yaml:"cluster"`
	User      string `yaml:"user"`
	Namespace string `yaml:"namespace"`
}

// Cluster is a resolved kubeconfig context: where the API server is and
// how to authenticate to it.
type Cluster struct {
	Context string
	Server  string
	client  *http.Client
	token   string
	basic   [2]string
}

// KubeconfigPaths is where kubeconfigs are read from: explicit (a
// --kubeconfig flag), else $KUBECONFIG (a list), else ~/.kube/config.
func KubeconfigPaths(explicit string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	if v := os.Getenv("KUBECONFIG"); v != "" {
		var out []string
		for _, p := range filepath.SplitList(v) {
			if p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	home, _ := os.UserHomeDir()
	return []string{filepath.Join(home, ".kube", "config")}
}

// LoadCluster reads the kubeconfig files (merged as kubectl merges them:
// the first file that names a cluster, user or context wins) and resolves
// context (or the current context when ""). It runs an exec credential
// plugin if the user has one.
func LoadCluster(ctx context.Context, paths []string, context string) (*Cluster, error) {
	var merged kubeconfig
	seen := map[string]bool{}
	read := 0
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			if os.IsNotExist(err) && len(paths) > 1 {
				continue
			}
			return nil, errdefs.WithHint(errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("kubeconfig: %w", err)), "pass --kubeconfig FILE or set KUBECONFIG")
		}
		read++
		var kc kubeconfig
		if err := yaml.Unmarshal(data, &kc); err != nil {
			return nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("kubeconfig %s: %w", p, err))
		}
		dir := filepath.Dir(p)
		if merged.CurrentContext == "" {
			merged.CurrentContext = kc.CurrentContext
		}
		for _, c := range kc.Clusters {
			if !seen["c/"+c.Name] {
				seen["c/"+c.Name] = true
				c.Cluster.dir = dir
				merged.Clusters = append(merged.Clusters, c)
			}
		}
		for _, u := range kc.Users {
			if !seen["u/"+u.Name] {
				seen["u/"+u.Name] = true
				u.User.dir = dir
				merged.Users = append(merged.Users, u)
			}
		}
		for _, c := range kc.Contexts {
			if !seen["x/"+c.Name] {
				seen["x/"+c.Name] = true
				merged.Contexts = append(merged.Contexts, c)
			}
		}
	}
	if read == 0 {
		return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "no kubeconfig in %s", strings.Join(paths, ", ")), "pass --kubeconfig FILE or set KUBECONFIG")
	}
	if context == "" {
		context = merged.CurrentContext
	}
	if context == "" {
		return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "no context given and the kubeconfig has no current-context"), "pass --context NAME")
	}
	var cx *contextInfo
	var names []string
	for i := range merged.Contexts {
		names = append(names, merged.Contexts[i].Name)
		if merged.Contexts[i].Name == context {
			cx = &merged.Contexts[i].Context
		}
	}
	if cx == nil {
		return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "kubeconfig has no context %q", context), "contexts: "+strings.Join(names, ", "))
	}
	var cl *clusterInfo
	for i := range merged.Clusters {
		if merged.Clusters[i].Name == cx.Cluster {
			cl = &merged.Clusters[i].Cluster
		}
	}
	if cl == nil || cl.Server == "" {
		return nil, errdefs.New(errdefs.InvalidArgument, "context %q names cluster %q, which the kubeconfig lacks or gives no server", context, cx.Cluster)
	}
	var us userInfo
	for i := range merged.Users {
		if merged.Users[i].Name == cx.User {
			us = merged.Users[i].User
		}
	}
	return newCluster(ctx, context, cl, &us)
}

func rel(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// fileOrData returns inline base64 data, else the file's bytes.
func fileOrData(data, file, dir, what string) ([]byte, error) {
	if data != "" {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, errdefs.New(errdefs.InvalidArgument, "kubeconfig %s-data: %v", what, err)
		}
		return b, nil
	}
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(rel(dir, file))
	if err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("kubeconfig %s: %w", what, err))
	}
	return b, nil
}

func newCluster(ctx context.Context, name string, cl *clusterInfo, us *userInfo) (*Cluster, error) {
	u, err := url.Parse(cl.Server)
	if err != nil || u.Host == "" {
		return nil, errdefs.New(errdefs.InvalidArgument, "context %q: server %q is not a URL", name, cl.Server)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cl.TLSServerName, InsecureSkipVerify: cl.InsecureSkipTLSVerify} //nolint:gosec // the kubeconfig asks for it
	ca, err := fileOrData(cl.CertificateAuthorityData, cl.CertificateAuthority, cl.dir, "certificate-authority")
	if err != nil {
		return nil, err
	}
	if ca != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errdefs.New(errdefs.InvalidArgument, "context %q: certificate-authority holds no PEM certificate", name)
		}
		tc.RootCAs = pool
	}
	c := &Cluster{Context: name, Server: strings.TrimSuffix(cl.Server, "/")}
	if us.AuthProvider != nil {
		return nil, errdefs.WithHint(errdefs.New(errdefs.Unsupported, "context %q: auth-provider %q is not supported", name, us.AuthProvider.Name),
			"use an exec credential plugin (kubectl's own auth providers were removed in Kubernetes 1.26)")
	}
	certPEM, err := fileOrData(us.ClientCertificateData, us.ClientCertificate, us.dir, "client-certificate")
	if err != nil {
		return nil, err
	}
	keyPEM, err := fileOrData(us.ClientKeyData, us.ClientKey, us.dir, "client-key")
	if err != nil {
		return nil, err
	}
	c.token = us.Token
	if us.TokenFile != "" {
		b, err := os.ReadFile(rel(us.dir, us.TokenFile))
		if err != nil {
			return nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("kubeconfig tokenFile: %w", err))
		}
		c.token = strings.TrimSpace(string(b))
	}
	c.basic = [2]string{us.Username, us.Password}
	if us.Exec != nil {
		cred, err := runExec(ctx, name, cl, us.Exec)
		if err != nil {
			return nil, err
		}
		if cred.Token != "" {
			c.token = cred.Token
		}
		if cred.ClientCertificateData != "" {
			certPEM, keyPEM = []byte(cred.ClientCertificateData), []byte(cred.ClientKeyData)
		}
	}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("context %q: client certificate: %w", name, err))
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	if cl.ProxyURL != "" {
		pu, err := url.Parse(cl.ProxyURL)
		if err != nil {
			return nil, errdefs.New(errdefs.InvalidArgument, "context %q: proxy-url: %v", name, err)
		}
		tr.Proxy = http.ProxyURL(pu)
	}
	c.client = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	return c, nil
}

// execCredential is the client.authentication.k8s.io ExecCredential
// status a plugin prints.
type execCredential struct {
	Status struct {
		Token                 string `json:"token"`
		ClientCertificateData string `json:"clientCertificateData"`
		ClientKeyData         string `json:"clientKeyData"`
	} `json:"status"`
}

type execStatus = struct {
	Token                 string `json:"token"`
	ClientCertificateData string `json:"clientCertificateData"`
	ClientKeyData         string `json:"clientKeyData"`
}

// runExec runs an exec credential plugin (client.authentication.k8s.io
// v1 or v1beta1), non-interactively.
func runExec(ctx context.Context, name string, cl *clusterInfo, ec *execConfig) (execStatus, error) {
	apiVersion := ec.APIVersion
	if apiVersion == "" {
		apiVersion = "client.authentication.k8s.io/v1"
	}
	info := map[string]any{"apiVersion": apiVersion, "kind": "ExecCredential", "spec": map[string]any{"interactive": false}}
	if ec.ProvideClusterInfo {
		info["spec"].(map[string]any)["cluster"] = map[string]any{"server": cl.Server, "tls-server-name": cl.TLSServerName, "insecure-skip-tls-verify": cl.InsecureSkipTLSVerify}
	}
	infoJSON, _ := json.Marshal(info)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ec.Command, ec.Args...)
	cmd.Env = append(os.Environ(), "KUBERNETES_EXEC_INFO="+string(infoJSON))
	for _, e := range ec.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return execStatus{}, errdefs.WithHint(errdefs.New(errdefs.PermissionDenied, "context %q: credential plugin %s: %v: %s", name, ec.Command, err, strings.TrimSpace(stderr.String())),
			"run the plugin by hand to see why it fails")
	}
	var cred execCredential
	if err := json.Unmarshal(out.Bytes(), &cred); err != nil {
		return execStatus{}, errdefs.New(errdefs.InvalidArgument, "context %q: credential plugin %s printed no ExecCredential: %v", name, ec.Command, err)
	}
	return execStatus(cred.Status), nil
}

// do sends one request with the context's credentials.
func (c *Cluster) do(ctx context.Context, method, path, query, contentType string, body []byte) (*http.Response, []byte, error) {
	u := c.Server + path
	if query != "" {
		u += "?" + query
	}
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, method, u, rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, u, nil)
	}
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "cortex")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.basic[0] != "":
		req.SetBasicAuth(c.basic[0], c.basic[1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, nil, errdefs.WithHint(errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("context %s: %w", c.Context, err)), "check the cluster is reachable: kubectl --context "+c.Context+" get ns")
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(http.MaxBytesReader(nil, resp.Body, 32<<20)); err != nil {
		return resp, nil, err
	}
	return resp, b.Bytes(), nil
}
