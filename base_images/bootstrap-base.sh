#!/usr/bin/env bash
# Make the FLOps base image from Debian packages, for sites (and CI) with no container registry
# to pull python:3.11-slim from.
#
#   base_images/bootstrap-base.sh [--registry 127.0.0.1:5050] [--platforms linux/amd64,linux/arm64]
#
# For each platform: debootstrap a Debian bookworm minbase root with python3, python3-venv and
# ca-certificates, strip documentation and caches, and commit it with Buildah. The platform
# images are pushed to the registry as one manifest list, <registry>/flops/debian-python:bookworm,
# which is what the flavour bases start FROM (build argument BASE_IMAGE). A platform whose image
# is already in the registry is not bootstrapped again. arm64 runs its second stage under qemu
# (binfmt must be registered: scripts/container-env.sh does it).
set -euo pipefail

registry="${FLOPS_REGISTRY:-127.0.0.1:5050}"
platforms="linux/amd64,linux/arm64"
suite="bookworm"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) registry="$2"; shift 2 ;;
    --platforms) platforms="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    *) echo "unknown argument: $1 (expected --registry, --platforms or --mirror)" >&2; exit 2 ;;
  esac
done

image="${registry}/flops/debian-python:${suite}"
work="$(mktemp -d /var/tmp/flops-bootstrap.XXXXXX)"
trap 'rm -rf "$work"' EXIT

tls=(--tls-verify=false)
IFS=',' read -r -a wanted <<<"$platforms"

have_platform() {  # is <image>-<arch> already in the registry?
  skopeo inspect "${tls[@]}" --raw "docker://${image}-$1" >/dev/null 2>&1
}

bootstrap_one() {
  local platform="$1" arch="${1#linux/}" root="$work/root-${1#linux/}"
  local started=$SECONDS
  echo "bootstrap: ${platform}: debootstrap ${suite} minbase"
  debootstrap --arch="$arch" --variant=minbase \
    --include=python3,python3-venv,ca-certificates \
    "$suite" "$root" "$mirror" >"$work/debootstrap-$arch.log" 2>&1 || {
      echo "bootstrap: ${platform}: debootstrap failed; last lines:" >&2
      tail -20 "$work/debootstrap-$arch.log" >&2
      return 1
    }
  # Smaller: no docs, man pages, locales, apt lists or caches in the image.
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*
  find "$root"/usr/lib/python3* -name '__pycache__' -type d -prune -exec rm -rf {} + || true
  ln -sf python3 "$root/usr/bin/python"
  tar -C "$root" -c . >"$work/root-$arch.tar"
  rm -rf "$root"
  local ctr
  ctr=$(buildah from --arch "$arch" --os linux scratch)
  buildah add --quiet "$ctr" "$work/root-$arch.tar" / >/dev/null
  buildah config --arch "$arch" --os linux --env LANG=C.UTF-8 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label org.opencontainers.image.title=flops-debian-python \
    --label "org.opencontainers.image.description=Debian ${suite} minbase with python3, made by debootstrap" \
    --cmd python3 "$ctr"
  buildah commit --quiet --rm "$ctr" "${image}-${arch}" >/dev/null
  buildah push --quiet "${tls[@]}" "${image}-${arch}" "docker://${image}-${arch}"
  rm -f "$work/root-$arch.tar"
  echo "bootstrap: ${platform}: pushed ${image}-${arch} in $((SECONDS - started)) s"
}

for platform in "${wanted[@]}"; do
  arch="${platform#linux/}"
  if have_platform "$arch"; then
    echo "bootstrap: ${platform}: ${image}-${arch} is already in the registry"
  else
    bootstrap_one "$platform"
  fi
done

# One manifest list naming every platform image, so FROM picks the right one per platform.
manifest="flops-bootstrap-manifest-$$"
buildah manifest rm "$manifest" >/dev/null 2>&1 || true
buildah manifest create "$manifest" >/dev/null
for platform in "${wanted[@]}"; do
  buildah manifest add "${tls[@]}" "$manifest" "docker://${image}-${platform#linux/}" >/dev/null
done
buildah manifest push --quiet --all "${tls[@]}" "$manifest" "docker://${image}"
buildah manifest rm "$manifest" >/dev/null
echo "bootstrap: ${image} lists ${platforms}"
