#!/usr/bin/env bash
# Installs what building and testing Cortex needs on a Debian machine:
# libseccomp-dev (cgo, the agent syscall filter), redis-server (cross-node
# bus tests), bubblewrap (the sandbox start-up benchmark compares against
# bwrap), iproute2 and nftables (debugging; the code itself talks netlink),
# docker-registry (the CNCF distribution registry: bundle push/pull tests
# and cortex-ops registry), etcd-server (the Kubernetes API server tests in
# e2e/kube), then downloads the Go modules of both modules. Idempotent:
# installs only what is missing.
set -euo pipefail

need=()
for pkg in libseccomp-dev redis-server bubblewrap iproute2 nftables pkg-config gcc docker-registry etcd-server; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# redis-server, docker-registry and etcd-server start system instances;
# tests start their own.
if command -v systemctl >/dev/null 2>&1; then
  for unit in redis-server docker-registry etcd; do systemctl disable --now "$unit" >/dev/null 2>&1 || true; done
fi
cd "$(dirname "$0")/.."
go mod download
(cd e2e/kube && go mod download)
