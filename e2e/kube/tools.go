//go:build tools

package kube

// The kube-apiserver the tests build comes from this module's pinned
// k8s.io/kubernetes.
import _ "k8s.io/kubernetes/cmd/kube-apiserver"
