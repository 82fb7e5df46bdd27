#!/usr/bin/env bash
# Build the images of the FLOps management stack with Buildah, and push them.
#
#   base_images/build-images.sh [--registry R] [--base-image B] [--platforms P] [--push] [--load]
#                               [--images "image-builder manager mlflow"] [--ca-file F]
#
# Images (tag <registry>/flops/<name>:<FLOps version from pyproject.toml>):
#   image-builder  base_images/builder.Containerfile   Buildah + image_builder (runs privileged)
#   manager        base_images/manager.Containerfile   python -m flops_manager
#   mlflow         base_images/mlflow.Containerfile    mlflow server, one worker
#   registry       base_images/registry.Containerfile  Debian's docker-registry (only if asked)
#
# --registry R     registry (and optional namespace) of the tags; default $FLOPS_REGISTRY or
#                  127.0.0.1:5050. Loopback registries are spoken to over plain HTTP.
# --base-image B   BASE_IMAGE of every Containerfile; default $FLOPS_BASE_IMAGE or
#                  python:3.11-slim. Air-gapped: <registry>/flops/debian-python:bookworm
#                  (base_images/bootstrap-base.sh makes it).
# --platforms P    comma-separated, e.g. linux/amd64,linux/arm64 (arm64 needs qemu binfmt);
#                  default the host's platform. Several platforms make a manifest list.
# --push           push each image to the registry (a manifest list with --all for several).
# --load           copy each image into the local Docker daemon (one platform only).
# --ca-file F      CA bundle pip trusts in the build stages (a TLS-intercepting proxy's); default
#                  /etc/ssl/certs/ca-certificates.crt when it exists, '' for none. It is not in
#                  the final images.
#
# An image is built only when its inputs changed: the label org.flops.inputs-hash holds a hash
# of its Containerfile and this script, the source files it copies, the base image's digest, the
# platforms and the version; an image that already has that label where it is going (the registry
# with --push, the Docker daemon with --load, else Buildah's storage) is skipped. Prints timings
# and sizes.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
registry="${FLOPS_REGISTRY:-127.0.0.1:5050}"
base_image="${FLOPS_BASE_IMAGE:-python:3.11-slim}"
platforms="linux/$(buildah info --format '{{.host.arch}}' 2>/dev/null || echo amd64)"
images="image-builder manager mlflow"
push=false
load=false
ca_file=/etc/ssl/certs/ca-certificates.crt
[[ -r "$ca_file" ]] || ca_file=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) registry="${2%/}"; shift 2 ;;
    --base-image) base_image="$2"; shift 2 ;;
    --platforms) platforms="$2"; shift 2 ;;
    --images) images="$2"; shift 2 ;;
    --ca-file) ca_file="$2"; shift 2 ;;
    --push) push=true; shift ;;
    --load) load=true; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-images: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

IFS=',' read -r -a platform_list <<<"$platforms"
if $load && ((${#platform_list[@]} > 1)); then
  echo "build-images: --load takes one platform, not ${platforms}" >&2; exit 2
fi
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml" | head -n 1)"
[[ -n "$version" ]] || { echo "build-images: no version in pyproject.toml" >&2; exit 1; }

containerfile_of() {
  case "$1" in
    image-builder) echo builder.Containerfile ;;
    manager | mlflow | registry) echo "$1.Containerfile" ;;
    *) echo "build-images: unknown image $1 (image-builder, manager, mlflow, registry)" >&2
       return 1 ;;
  esac
}

tls_flag() {  # plain HTTP for registries on loopback, TLS elsewhere
  case "$1" in
    localhost[:/]* | 127.*) echo "--tls-verify=false" ;;
    *) echo "--tls-verify=true" ;;
  esac
}

# The build context: only the files the Containerfiles copy, as git sees them (tracked and
# untracked, not ignored), so that the context is small and its hash is exact.
work="$(mktemp -d /var/tmp/flops-build-images.XXXXXX)"
trap 'rm -rf "$work"' EXIT
ctx="$work/context"
mkdir -p "$ctx/build"
sources=(pyproject.toml README.md flops_utils flops_core flops_data_server flops_aggregator flops_learner
  flops_manager flops_cli image_builder)
git -C "$repo" ls-files -z --cached --others --exclude-standard -- "${sources[@]}" |
  while IFS= read -r -d '' f; do if [[ -f "$repo/$f" ]]; then printf '%s\0' "$f"; fi; done |
  tar -C "$repo" --null -T - -cf - | tar -C "$ctx" -xf -
for dir in "${sources[@]}"; do  # a package not written yet is an empty folder, not an error
  [[ "$dir" == *.* ]] || mkdir -p "$ctx/$dir"
done
[[ -z "$ca_file" ]] || cp "$ca_file" "$ctx/build/extra-ca.crt"

# The base image's digest, so that a new base rebuilds everything.
base_digest="$(skopeo inspect "$(tls_flag "$base_image")" --raw "docker://$base_image" 2>/dev/null |
  sha256sum | cut -d' ' -f1)" || true
if [[ -z "$base_digest" || "$base_digest" == "$(printf '' | sha256sum | cut -d' ' -f1)" ]]; then
  base_digest="$(buildah inspect --type image --format '{{.FromImageDigest}}' "$base_image" \
    2>/dev/null || echo "$base_image")"
  echo "build-images: ${base_image} is not reachable in a registry; hashing ${base_digest}"
fi

inputs_hash() {  # <name> <containerfile>
  local files=(pyproject.toml)
  case "$1" in
    image-builder | manager) files=(pyproject.toml README.md "${sources[@]:2}") ;;
    registry) files=() ;;
  esac
  {
    echo "version=$version platforms=$platforms base=$base_image@$base_digest"
    sha256sum "$repo/base_images/$2" "$0" | cut -d' ' -f1  # the recipe: Containerfile, this script
    if ((${#files[@]})); then
      (cd "$ctx" && find "${files[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
    fi
  } | sha256sum | cut -d' ' -f1
}

up_to_date() {  # <tag> <hash>: does every destination already hold an image with this hash?
  local tag="$1" hash="$2" label='{{index .Labels "org.flops.inputs-hash"}}'
  if $push; then
    [[ "$(skopeo inspect "$(tls_flag "$tag")" --format "$label" "docker://$tag" 2>/dev/null)" \
      == "$hash" ]] || return 1
  fi
  if $load; then
    [[ "$(docker image inspect --format '{{index .Config.Labels "org.flops.inputs-hash"}}' \
      "$tag" 2>/dev/null)" == "$hash" ]] || return 1
  fi
  if ! $push && ! $load; then
    [[ "$(buildah inspect --type image --format "$label" "$tag" 2>/dev/null)" == "$hash" ]] ||
      return 1
  fi
}

layer_bytes() {  # <skopeo transport:reference> [flags]: bytes of its layers, per its manifest
  skopeo inspect "${@:2}" --raw "$1" 2>/dev/null | python3 -c '
import json, sys
m = json.load(sys.stdin)
if "manifests" in m:
    print("a manifest list of", len(m["manifests"]), "platforms")
else:
    print(round(sum(layer["size"] for layer in m["layers"]) / 1e6), "MB")
' 2>/dev/null || true
}

size_of() {  # <tag>: uncompressed (Buildah's storage) and compressed (registry) size
  local local_size remote_size=""
  local_size="$(layer_bytes "containers-storage:$1")"
  if $push && [[ "$local_size" != *platforms ]]; then
    remote_size="$(layer_bytes "docker://$1" "$(tls_flag "$1")")"
  fi
  echo "${local_size:-?}${remote_size:+ (${remote_size} compressed in the registry)}"
}

report=()
for name in $images; do
  file="$(containerfile_of "$name")"
  tag="${registry}/flops/${name}:${version}"
  hash="$(inputs_hash "$name" "$file")"
  started=$SECONDS
  if up_to_date "$tag" "$hash"; then
    echo "build-images: ${tag} is up to date (inputs ${hash:0:12}); skipped"
    report+=("$(printf '%-56s skipped  %4s s  %s' "$tag" 0 "$(size_of "$tag")")")
    continue
  fi
  echo "build-images: building ${tag} for ${platforms} from ${base_image} (inputs ${hash:0:12})"
  args=(--layers --format docker --network host "$(tls_flag "$base_image")"
    -f "$repo/base_images/$file"
    --build-arg "BASE_IMAGE=$base_image" --build-arg "FLOPS_VERSION=$version"
    --build-arg "FLOPS_INPUTS_HASH=$hash"
    # Also given as --label: Buildah's layer cache does not see a changed build-arg in a LABEL
    # step (measured: a rebuild with another FLOPS_INPUTS_HASH reused the cached label), so an
    # image whose only input change is this script kept its old hash and was rebuilt each run.
    --label "org.flops.inputs-hash=$hash")
  if ((${#platform_list[@]} > 1)); then
    # --manifest adds to an existing list: start from none.
    buildah manifest rm "$tag" >/dev/null 2>&1 || buildah rmi "$tag" >/dev/null 2>&1 || true
    buildah build "${args[@]}" --platform "$platforms" --manifest "$tag" "$ctx"
  else
    buildah build "${args[@]}" --platform "$platforms" -t "$tag" "$ctx"
  fi
  built=$((SECONDS - started))
  if $push; then
    if ((${#platform_list[@]} > 1)); then
      buildah manifest push --quiet --all "$(tls_flag "$tag")" "$tag" "docker://$tag"
    else
      buildah push --quiet "$(tls_flag "$tag")" "$tag" "docker://$tag"
    fi
  fi
  if $load; then
    buildah push --quiet "$tag" "docker-daemon:$tag"
  fi
  report+=("$(printf '%-56s built    %4s s  %s  (build %s s)' "$tag" \
    "$((SECONDS - started))" "$(size_of "$tag")" "$built")")
done

echo "build-images: summary (seconds, size)"
printf '  %s\n' "${report[@]}"
