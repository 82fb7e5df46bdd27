#!/usr/bin/env bash
# Write the env file of the FLOps compose stack (docker-compose.yml): a random admin token,
# ports, images and the Docker socket's group. It never overwrites a file that exists: a missing
# variable (one a later version added) is appended, every line already there is kept.
#
#   scripts/compose-env.sh [--output PATH] [--build-ca FILE]
#
# --output PATH     the env file to write; default .env next to docker-compose.yml (git-ignored).
# --build-ca FILE   also copy FILE to build/extra-ca.crt (git-ignored), the CA bundle pip trusts
#                   while `docker-compose build` builds the images, e.g. behind a TLS-intercepting
#                   proxy: --build-ca /etc/ssl/certs/ca-certificates.crt. Only the build stages
#                   see it; it is not in the images.
#
# Any variable below that is set in the environment is written as given, e.g.
#   FLOPS_MANAGER_PORT=15072 FLOPS_MLFLOW_PORT=15000 scripts/compose-env.sh --output /tmp/x.env
# Secrets (FLOPS_ADMIN_TOKEN) are never taken from defaults: they are random, 256 bits.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
output="$here/.env"
build_ca=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --output) output="$2"; shift 2 ;;
    --build-ca) build_ca="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compose-env: unknown argument: $1 (expected --output PATH, --build-ca FILE)" >&2
       exit 2 ;;
  esac
done

if [[ -n "$build_ca" ]]; then
  mkdir -p "$here/build"
  cp "$build_ca" "$here/build/extra-ca.crt"
  echo "compose-env: ${build_ca} -> build/extra-ca.crt (trusted by pip in compose builds)"
fi

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/pyproject.toml" | head -n 1)"
random_secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
docker_gid() { stat -c '%g' /var/run/docker.sock 2>/dev/null || echo 0; }

if [[ -n "${FLOPS_ADMIN_TOKEN:-}" && ${#FLOPS_ADMIN_TOKEN} -lt 32 ]]; then
  echo "compose-env: FLOPS_ADMIN_TOKEN from the environment is shorter than 32 characters" >&2
  exit 2
fi
manager_port="${FLOPS_MANAGER_PORT:-5072}"
mlflow_port="${FLOPS_MLFLOW_PORT:-5000}"
registry_port="${FLOPS_REGISTRY_PORT:-5073}"

# name, value, comment; in the order they are written.
entries=(
  "FLOPS_ADMIN_TOKEN|${FLOPS_ADMIN_TOKEN:-$(random_secret)}|the admin's bearer token (secret)"
  "FLOPS_ORCHESTRATOR|${FLOPS_ORCHESTRATOR:-docker}|where the manager runs FL services: docker or local"
  "FLOPS_MANAGER_HOST|${FLOPS_MANAGER_HOST:-127.0.0.1}|address the manager listens on (host network); 0.0.0.0 for all"
  "FLOPS_MANAGER_PORT|$manager_port|"
  "FLOPS_MLFLOW_BIND|${FLOPS_MLFLOW_BIND:-127.0.0.1}|host address MLflow is published on"
  "FLOPS_MLFLOW_PORT|$mlflow_port|"
  "FLOPS_TRACKING_URI|${FLOPS_TRACKING_URI:-http://127.0.0.1:$mlflow_port}|MLflow as the manager and FL services reach it"
  "FLOPS_REGISTRY_BIND|${FLOPS_REGISTRY_BIND:-127.0.0.1}|host address the registry is published on"
  "FLOPS_REGISTRY_PORT|$registry_port|"
  "FLOPS_REGISTRY|${FLOPS_REGISTRY:-127.0.0.1:$registry_port}|registry (host:port) images are pushed to and pulled from"
  "FLOPS_DATA_SERVER_PORT|${FLOPS_DATA_SERVER_PORT:-11027}|ML data server port on learner nodes"
  "FLOPS_LOCAL_NODES|${FLOPS_LOCAL_NODES:-3}|data servers the manager runs on this host, from FLOPS_DATA_SERVER_PORT on"
  "FLOPS_DOCKER_GID|${FLOPS_DOCKER_GID:-$(docker_gid)}|group of /var/run/docker.sock, given to the manager"
  "FLOPS_BASE_IMAGE|${FLOPS_BASE_IMAGE:-python:3.11-slim}|base of the images compose builds"
  "FLOPS_MANAGER_IMAGE|${FLOPS_MANAGER_IMAGE:-flops/manager:$version}|"
  "FLOPS_MLFLOW_IMAGE|${FLOPS_MLFLOW_IMAGE:-flops/mlflow:$version}|"
  "FLOPS_BUILDER_IMAGE|${FLOPS_BUILDER_IMAGE:-flops/image-builder:$version}|"
  "FLOPS_REGISTRY_IMAGE|${FLOPS_REGISTRY_IMAGE:-registry:2}|or an image of base_images/registry.Containerfile"
)

umask 077
if [[ -e "$output" ]]; then
  added=0
  for entry in "${entries[@]}"; do
    IFS='|' read -r name value comment <<<"$entry"
    if ! grep -q "^${name}=" "$output"; then
      ((added == 0)) && printf '\n# Added by scripts/compose-env.sh on %s\n' "$(date -u +%F)" >>"$output"
      [[ -z "$comment" ]] || printf '# %s\n' "$comment" >>"$output"
      printf '%s=%s\n' "$name" "$value" >>"$output"
      added=$((added + 1))
    fi
  done
  echo "compose-env: ${output} exists: kept as it is$( ((added)) && echo ", ${added} missing variables appended")"
  exit 0
fi

mkdir -p "$(dirname "$output")"
tmp="$(mktemp "$output.XXXXXX")"
{
  echo "# FLOps compose stack: made by scripts/compose-env.sh on $(date -u +%F)."
  echo "# Holds secrets: keep it private (mode 600), never commit it."
  for entry in "${entries[@]}"; do
    IFS='|' read -r name value comment <<<"$entry"
    [[ -z "$comment" ]] || printf '# %s\n' "$comment"
    printf '%s=%s\n' "$name" "$value"
  done
} >"$tmp"
# Not over a file made meanwhile: link fails if the name exists.
if ! ln "$tmp" "$output" 2>/dev/null; then
  rm -f "$tmp"
  echo "compose-env: ${output} appeared meanwhile: kept as it is" >&2
  exit 0
fi
rm -f "$tmp"
echo "compose-env: wrote ${output} (admin token: FLOPS_ADMIN_TOKEN in that file)"
