#!/usr/bin/env bash
# Installs what building and testing Cortex needs on a Debian machine:
# libseccomp-dev (cgo, the agent syscall filter), redis-server (cross-node
# bus tests), bubblewrap (the sandbox start-up benchmark compares against
# bwrap), iproute2 and nftables (debugging; the code itself talks netlink),
# passwd (useradd/groupadd: e2e tests drive the CLI as a real non-root
# user), then downloads the Go modules. Idempotent: installs only what is missing.
set -euo pipefail

need=()
for pkg in libseccomp-dev redis-server bubblewrap iproute2 nftables pkg-config gcc passwd; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# redis-server's package starts a system instance; tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
cd "$(dirname "$0")/.."
go mod download
