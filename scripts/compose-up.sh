#!/usr/bin/env bash
# Bring the FLOps compose stack (docker-compose.yml) up and wait until it is healthy, whether or
# not this machine can pull images: what cannot be pulled is built from base_images/.
#
#   scripts/compose-up.sh [--env-file PATH] [-p NAME] [--timeout SECONDS]
#
# Steps, one line of output each:
#   1. the env file: scripts/compose-env.sh writes it if it is missing (random admin token), or
#      appends the variables a newer version added;
#   2. each image of the stack, as `compose config` resolves it: present in the Docker daemon:
#      used; pullable: pulled; else built with base_images/build-images.sh --load (Buildah) and
#      its name written into the env file (FLOPS_*_IMAGE). Images this script built are
#      checked again on every run and rebuilt only when their sources changed;
#   3. the base of what is built: FLOPS_BASE_IMAGE where it can be pulled, else the Debian base
#      of base_images/bootstrap-base.sh in the local registry (127.0.0.1:5050, started by
#      scripts/container-env.sh), bootstrapped first if it is not there yet, and written into
#      the env file (the manager builds learner images from it too);
#   4. `compose up -d --no-build`, then wait until every service reports healthy.
#
# --env-file PATH   default .env next to docker-compose.yml (git-ignored, mode 600).
# -p NAME           the compose project name (default: Compose's, the folder's name).
# --timeout S       seconds to wait for health (default 300).
#
# Environment: FLOPS_COMPOSE, the Compose command (default `docker compose` if it works, else
# `docker-compose`; 1.29 and v2 both work); FLOPS_BUILD_PREFIX, where built images are named
# (default `localhost`: localhost/flops/manager:<version>); FLOPS_BOOTSTRAP_REGISTRY (default
# 127.0.0.1:5050). Variables of the stack set in the environment win over the env file, as in
# Compose. Nothing secret is printed. Running it again with nothing changed takes seconds.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
env_file="$here/.env"
project=()
timeout=300
while [[ $# -gt 0 ]]; do
  case "$1" in
    --env-file) env_file="$2"; shift 2 ;;
    -p | --project-name) project=(-p "$2"); shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compose-up: unknown argument: $1 (expected --env-file PATH, -p NAME, --timeout S)" >&2
       exit 2 ;;
  esac
done
prefix="${FLOPS_BUILD_PREFIX:-localhost}"
prefix="${prefix%/}"
bootstrap_registry="${FLOPS_BOOTSTRAP_REGISTRY:-127.0.0.1:5050}"
bootstrapped_base="$bootstrap_registry/flops/debian-python:bookworm"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/pyproject.toml" | head -n 1)"
started=$SECONDS
mkdir -p "$here/build"
log="$here/build/compose-up.log"  # this run's output of builds and Compose (build/ is git-ignored)
: >"$log"

say() { echo "compose-up: $*"; }
fail() { echo "compose-up: $*" >&2; exit 1; }

docker info >/dev/null 2>&1 ||
  fail "the Docker daemon does not answer: start it (on Debian, scripts/container-env.sh does)"

# 1. The env file.
env_dir="$(cd "$(dirname "$env_file")" 2>/dev/null && pwd)" ||
  fail "the folder of --env-file $env_file does not exist"
env_file="$env_dir/$(basename "$env_file")"
say "env file: $("$here/scripts/compose-env.sh" --output "$env_file" | sed 's/^compose-env: //')"

if [[ -n "${FLOPS_COMPOSE:-}" ]]; then
  read -r -a compose <<<"$FLOPS_COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  compose=(docker-compose)
fi
compose_version="$("${compose[@]}" version --short 2>/dev/null)" ||
  fail "no Compose: neither \`docker compose\` nor docker-compose runs (set FLOPS_COMPOSE)"
say "compose: ${compose[*]} ${compose_version}"
dc() { "${compose[@]}" "${project[@]}" --env-file "$env_file" -f "$here/docker-compose.yml" "$@"; }

set_env() {  # <name> <value>: in the env file (kept private) and for this run's Compose
  local tmp
  tmp="$(mktemp "$env_file.XXXXXX")"
  if grep -q "^$1=" "$env_file"; then
    awk -v n="$1" -v v="$2" 'index($0, n "=") == 1 { print n "=" v; next } { print }' \
      "$env_file" >"$tmp"
  else
    { cat "$env_file"; printf '%s=%s\n' "$1" "$2"; } >"$tmp"
  fi
  chmod "$(stat -c %a "$env_file")" "$tmp"
  mv "$tmp" "$env_file"
  export "$1=$2"
  say "$(basename "$env_file"): $1=$2"
}

# What Compose will use: `config` resolves the environment, the env file and the defaults.
config="$(dc config)" || fail "\`${compose[*]} config\` failed (see above)"
declare -A image_of
while read -r service image; do
  image_of[$service]="$image"
done < <(awk '/^services:/ { s = 1; next } s && /^[^ ]/ { s = 0 }
  s && /^  [A-Za-z0-9_.-]+:$/ { svc = substr($1, 1, length($1) - 1) }
  s && /^    image: / { print svc, $2 }' <<<"$config")
base_image="$(sed -n 's/^ *FLOPS_BASE_IMAGE: *//p' <<<"$config" | head -n 1)"
unset config  # it holds the admin token

# 2. The images: service, Containerfile's name in build-images.sh, variable of the env file.
stack=("registry registry FLOPS_REGISTRY_IMAGE" "mlflow mlflow FLOPS_MLFLOW_IMAGE"
  "manager manager FLOPS_MANAGER_IMAGE" "image-builder image-builder FLOPS_BUILDER_IMAGE")
to_build=()
missing=0  # of to_build, the images the Docker daemon lacks (the others are checked again)
have_buildah=false
command -v buildah >/dev/null && command -v skopeo >/dev/null && have_buildah=true
for entry in "${stack[@]}"; do
  read -r service name variable <<<"$entry"
  image="${image_of[$service]:-}"
  [[ -n "$image" ]] || fail "docker-compose.yml has no image for the service $service"
  present=false
  docker image inspect "$image" >/dev/null 2>&1 && present=true
  if [[ "$image" == "$prefix/flops/"* ]] && { $have_buildah || ! $present; }; then
    say "$service: $image was built here; checking it against the sources"
    to_build+=("$entry")
    $present || missing=$((missing + 1))
  elif $present; then
    say "$service: $image is in the Docker daemon"
  elif pulled="$(docker pull --quiet "$image" 2>&1)"; then
    say "$service: pulled $image"
  else
    say "$service: $image cannot be pulled ($(tail -n 1 <<<"$pulled" | sed 's/^Error response from daemon: //; s/^Get "[^"]*": //; s/^dial tcp: //')); building it"
    to_build+=("$entry")
    missing=$((missing + 1))
  fi
done

tls_flag() { case "$1" in localhost[:/]* | 127.*) echo --tls-verify=false ;; *) echo --tls-verify=true ;; esac; }
pullable_base() {  # can the builder (Buildah, or Docker without it) start FROM this image?
  if $have_buildah; then
    skopeo inspect "$(tls_flag "$1")" --raw "docker://$1" >/dev/null 2>&1
  else
    docker image inspect "$1" >/dev/null 2>&1 || docker pull --quiet "$1" >/dev/null 2>&1
  fi
}
no_base=""  # why there is nothing to build from
resolve_base() {  # sets base_image to what builds start FROM, bootstrapping it if need be
  if pullable_base "$base_image"; then
    say "base: $base_image"
    return 0
  fi
  say "base: $base_image cannot be pulled; using $bootstrapped_base"
  if ! pullable_base "$bootstrapped_base"; then
    if ! $have_buildah || ! command -v debootstrap >/dev/null; then
      no_base="install buildah, skopeo and debootstrap (scripts/container-env.sh does) or set FLOPS_BASE_IMAGE in $env_file to a base image this machine can pull"
      return 1
    fi
    if ! curl -fsS --max-time 5 "http://$bootstrap_registry/v2/" >/dev/null 2>&1; then
      no_base="no registry on $bootstrap_registry to bootstrap the base into: run scripts/container-env.sh (starts one), set FLOPS_BOOTSTRAP_REGISTRY, or set FLOPS_BASE_IMAGE in $env_file to a base image this machine can pull"
      return 1
    fi
    say "base: bootstrapping $bootstrapped_base with base_images/bootstrap-base.sh (about 1 min)"
    "$here/base_images/bootstrap-base.sh" --registry "$bootstrap_registry" \
      --platforms "linux/$(buildah info --format '{{.host.arch}}')" >>"$log" 2>&1 ||
      fail "bootstrap-base.sh failed; the end of its output:$(echo; tail -n 25 "$log")"
  fi
  base_image="$bootstrapped_base"
  [[ "$(sed -n 's/^FLOPS_BASE_IMAGE=//p' "$env_file" | tail -n 1)" == "$base_image" ]] ||
    set_env FLOPS_BASE_IMAGE "$base_image"
}

# 3. The base of what is built; images built here that are present are used as they are when
# there is nothing to check them with.
if ((${#to_build[@]})) && ! resolve_base; then
  ((missing == 0)) || fail "nothing to build from: $no_base"
  say "cannot check the images built here against the sources ($no_base); using them as they are"
  to_build=()
fi
if ((${#to_build[@]})); then
  names=()
  for entry in "${to_build[@]}"; do names+=("$(cut -d' ' -f2 <<<"$entry")"); done
  build_started=$SECONDS
  if $have_buildah; then
    say "images ${names[*]}: base_images/build-images.sh --load from $base_image builds what changed (log: $log)"
    "$here/base_images/build-images.sh" --registry "$prefix" --base-image "$base_image" \
      --images "${names[*]}" --load >>"$log" 2>&1 ||
      fail "build-images.sh failed; the end of its output:$(echo; tail -n 25 "$log")"
    sed -n '/^build-images: summary/,$p' "$log" | sed '1d; s/^ */compose-up:   /'
    echo "== end of build-images.sh" >>"$log"
  else
    for name in "${names[@]}"; do
      file="$name.Containerfile"
      [[ "$name" != image-builder ]] || file=builder.Containerfile
      say "building $prefix/flops/$name:$version from $base_image with docker build (no Buildah; log: $log)"
      docker build --network host -f "$here/base_images/$file" --build-arg "BASE_IMAGE=$base_image" \
        --build-arg "FLOPS_VERSION=$version" -t "$prefix/flops/$name:$version" "$here" >>"$log" 2>&1 ||
        fail "docker build of $name failed; the end of its output:$(echo; tail -n 25 "$log")"
    done
  fi
  say "images ready in $((SECONDS - build_started)) s"
  for entry in "${to_build[@]}"; do
    read -r service name variable <<<"$entry"
    built="$prefix/flops/$name:$version"
    [[ "${image_of[$service]}" == "$built" &&
      "$(sed -n "s/^$variable=//p" "$env_file" | tail -n 1)" == "$built" ]] ||
      set_env "$variable" "$built"
  done
fi

# 4. Up, and healthy.
say "starting: ${compose[*]} up -d --no-build"
echo "== ${compose[*]} up -d --no-build" >>"$log"
dc up -d --no-build >>"$log" 2>&1 ||
  fail "\`${compose[*]} up -d\` failed; the end of its output:$(echo; sed -n '/^== .* up -d/,$p' "$log" | tail -n 25)"
deadline=$((SECONDS + timeout))
last=""
while :; do
  mapfile -t ids < <(dc ps -q 2>/dev/null)
  ((${#ids[@]})) || fail "no containers after \`up\`"
  states="$(docker inspect --format \
    '{{index .Config.Labels "com.docker.compose.service"}}={{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' \
    "${ids[@]}" | sort | tr '\n' ' ')"
  states="${states% }"
  [[ "$states" == "$last" ]] || say "services: $states"
  last="$states"
  if ! grep -qvE '=(healthy|running)$' <(tr ' ' '\n' <<<"$states"); then
    break
  fi
  if grep -qE '=(unhealthy|exited|dead)' <<<"$states" || ((SECONDS >= deadline)); then
    dc logs --no-color --tail 30 >&2 || true
    fail "not healthy after $((SECONDS - started)) s: $states (logs above)"
  fi
  sleep 1
done
setting() {  # <name>: its value for Compose: the environment's, else the env file's
  if [[ -n "${!1:-}" ]]; then echo "${!1}"; else sed -n "s/^$1=//p" "$env_file" | tail -n 1; fi
}
say "healthy in $((SECONDS - started)) s: manager http://$(setting FLOPS_MANAGER_HOST):$(setting FLOPS_MANAGER_PORT), MLflow $(setting FLOPS_TRACKING_URI), registry $(setting FLOPS_REGISTRY) (admin token: FLOPS_ADMIN_TOKEN in $env_file)"
