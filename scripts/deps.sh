#!/usr/bin/env bash
# Installs what building, running and testing Cortex needs on Debian 12,
# Debian 13 and Ubuntu 24.04 (named by /etc/os-release): libseccomp-dev
# (cgo, the agent syscall filter), redis-server (cross-node bus tests),
# bubblewrap (the sandbox start-up benchmark compares against bwrap),
# iproute2 and nftables (debugging; the code itself talks netlink), a
# Python 3 and Node.js for the agents (each release's own: Debian 12
# python3.11 + nodejs 18, Debian 13 python3.13 + nodejs 20, Ubuntu 24.04
# python3.12 + nodejs 18; the examples and tests pick whatever runtime
# the host has), passwd (useradd/groupadd: e2e tests drive the CLI as a
# real non-root user), docker-registry (the CNCF distribution registry:
# bundle push/pull tests and cortex-ops registry), etcd-server (the
# Kubernetes API server tests in e2e/kube), the Python headers, pip,
# setuptools and wheel of that Python (the dependency tests build a pure
# and a C-extension wheel with pip wheel and install them with pip) and
# npm (Node agents' packages: npm ci), then downloads the Go modules of
# both modules. Idempotent: installs only what is missing.
# DEPS_DRY_RUN=1 prints the plan and installs nothing; DEPS_OS_RELEASE
# names another os-release file (to check the plan).
set -euo pipefail

. "${DEPS_OS_RELEASE:-/etc/os-release}" 2>/dev/null || { ID=unknown; VERSION_ID=; }
case "${ID}:${VERSION_ID:-}" in
  debian:12) python=python3.11 ;;
  debian:13) python=python3.13 ;;
  ubuntu:24.04) python=python3.12 ;;
  *)
    echo "deps: ${PRETTY_NAME:-this system} is not one Cortex is tested on (Debian 12, Debian 13, Ubuntu 24.04); trying the Debian package names" >&2
    python=python3
    ;;
esac

need=()
want=(libseccomp-dev redis-server bubblewrap iproute2 nftables pkg-config gcc passwd docker-registry etcd-server)
# An interpreter already on the machine (Node from NodeSource, a pyenv
# Python) is enough; the runtime registry finds it.
command -v node >/dev/null 2>&1 || want+=(nodejs)
command -v npm >/dev/null 2>&1 || want+=(npm)
command -v "$python" >/dev/null 2>&1 || want+=("$python")
# Building test wheels needs the headers and pip of the python the
# agents run (Debian's names: python3.11-dev; pip, setuptools and wheel
# for the release's default python3).
want+=("${python}-dev" python3-pip python3-setuptools python3-wheel)
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [[ "${DEPS_DRY_RUN:-}" == 1 ]]; then
  echo "deps: ${PRETTY_NAME:-unknown}: would install: ${need[*]:-(nothing)}"
  exit 0
fi
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
