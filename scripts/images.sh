#!/usr/bin/env bash
# make images: one container image per service (deploy/images/<service>/Containerfile), built
# here without a container registry:
#   1. the base: when BASE_IMAGE is the local one and missing, debootstrap (minbase bookworm,
#      python3 + python3-venv) from the Debian mirror apt uses, trimmed and `podman import`ed;
#   2. the build context in .images/context: every third-party wheel the services need, pinned
#      by constraints.txt and downloaded once (pip's cache; redone when a pin changes), and a
#      copy of our packages' sources, so the builds themselves are offline;
#   3. `podman build` of each image (its layer cache reuses whatever did not change), then the
#      size of each against the 250 MB budget.
# Usage: scripts/images.sh [gateway|dagmanager|runner ...]   (default: all three)
#        scripts/images.sh --context   only step 2, for building with docker elsewhere (no root)
# Environment: BASE_IMAGE (default localhost/qmtl-base:bookworm; e.g. docker.io/library/
# python:3.11-slim where a registry is reachable), IMAGE_PREFIX (default localhost/qmtl-),
# DEBIAN_MIRROR (default: the first Debian URI of /etc/apt/sources.list{,.d}),
# QMTL_IMAGE_REVISION (default: git rev-parse HEAD, "-dirty" when tracked files changed).
# One build at a time on a machine (podman's storage and the image tags are the machine's): it
# waits for the lock /tmp/qmtl-images.lock, which tests/images holds while it looks at the
# images it built (and then sets QMTL_IMAGES_LOCK_HELD=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
LOCAL_BASE="localhost/qmtl-base:bookworm"
BASE_IMAGE="${BASE_IMAGE:-$LOCAL_BASE}"
IMAGE_PREFIX="${IMAGE_PREFIX:-localhost/qmtl-}"
WORK="$ROOT/.images"
CONTEXT="$WORK/context"
BUDGET_MB=250
LOCK=/tmp/qmtl-images.lock
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
CONTEXT_ONLY=""
if [ "${1:-}" = "--context" ]; then
  CONTEXT_ONLY=1
  shift
fi
SERVICES=("$@")
[ "${#SERVICES[@]}" -gt 0 ] || SERVICES=(gateway dagmanager runner)

say() { printf '==> %s\n' "$*"; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

lock() {
  [ -z "${QMTL_IMAGES_LOCK_HELD:-}" ] || return 0
  exec 9>"$LOCK"
  if ! flock -n 9; then
    say "waiting for another image build to finish ($LOCK)"
    flock 9
  fi
}

preflight() {
  [ -x "$PYTHON" ] || die "$PYTHON is missing (make setup)"
  [ -z "$CONTEXT_ONLY" ] || return 0
  command -v podman >/dev/null || die "podman is not installed (make setup installs it)"
  # debootstrap, chroot and podman's storage in /var/lib/containers want root.
  [ "$(id -u)" -eq 0 ] || die "run as root: the base needs debootstrap and root podman storage"
  for service in "${SERVICES[@]}"; do
    [ -f "deploy/images/$service/Containerfile" ] || die "no deploy/images/$service/Containerfile"
  done
}

debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "$DEBIAN_MIRROR"
    return
  fi
  local uri
  uri="$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*debian\/\?\)[[:space:]]*$/\1/p' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)"
  [ -n "$uri" ] || uri="$(sed -n 's/^deb[[:space:]]\+\(http[^[:space:]]*debian\/\?\)[[:space:]].*/\1/p' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1)"
  echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
  if [ "$BASE_IMAGE" != "$LOCAL_BASE" ]; then
    say "base: $BASE_IMAGE (given; podman pulls it if it is not local)"
    return
  fi
  if podman image exists "$LOCAL_BASE"; then
    say "base: $LOCAL_BASE present"
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap is not installed (make setup installs it)"
  local mirror rootfs start=$SECONDS
  mirror="$(debian_mirror)"
  mkdir -p "$WORK"
  rootfs="$(mktemp -d "$WORK/base-rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  say "base: debootstrap minbase bookworm + python3 from $mirror (about a minute)"
  # Bookworm's python3 is 3.11, the version constraints.txt's wheels are for.
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$mirror" \
    >"$WORK/debootstrap.log" 2>&1 || die "debootstrap failed: $WORK/debootstrap.log"
  # What a container never reads (the package cache and lists, docs, man pages, translations),
  # and a dpkg rule that keeps it out of whatever a derived image installs.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/qmtl-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
  tar -C "$rootfs" -c . | podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  say "base: $LOCAL_BASE imported in $((SECONDS - start)) s"
}

# The wheels of every third-party package the three images install, binary only, for the base:
# CPython 3.11 on x86_64 with bookworm's glibc 2.36 (whatever this machine is). Redone only when
# a pin or a dependency list changes.
prepare_wheelhouse() {
  local stamp="$CONTEXT/wheelhouse/.inputs" want
  want="$(cat constraints.txt deploy/images/build-requirements.txt pyproject.toml \
    runtime/pyproject.toml generated/python/pyproject.toml services/gateway/pyproject.toml \
    services/dag_manager/pyproject.toml services/sdk/pyproject.toml | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "wheelhouse: up to date ($(find "$CONTEXT/wheelhouse" -name '*.whl' | wc -l) wheels)"
    return
  fi
  say "wheelhouse: downloading the pinned wheels (pip's cache first)"
  rm -rf "$CONTEXT/wheelhouse"
  mkdir -p "$CONTEXT/wheelhouse"
  # Our own packages are named only so pip resolves their dependencies; pip download does not
  # save a local directory.
  "$PYTHON" -m pip download -q --disable-pip-version-check --only-binary=:all: \
    --python-version 3.11 --implementation cp --platform manylinux_2_36_x86_64 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --constraint constraints.txt \
    --dest "$CONTEXT/wheelhouse" \
    ./runtime ./generated/python . ./services/gateway ./services/dag_manager ./services/sdk \
    -r deploy/images/build-requirements.txt || die "pip download failed"
  echo "$want" >"$stamp"
}

# Our sources, as the Containerfiles' build stage expects them (the repository's layout, so
# runtime/hatch_build.py finds ../generated/python). tar keeps the files' times, and podman's
# cache compares contents, so an unchanged tree reuses the built layers.
prepare_sources() {
  rm -rf "$CONTEXT/src"
  mkdir -p "$CONTEXT/src"
  tar -c --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' --exclude=node_modules \
    --exclude=dashboard-src \
    pyproject.toml README.md runtime generated/python services/qmtl services/gateway \
    services/dag_manager services/sdk | tar -x -C "$CONTEXT/src"
  cp -p constraints.txt deploy/images/build-requirements.txt "$CONTEXT/"
  # The revision as a file the Containerfiles copy before their labels: podman 4.3's layer
  # cache reuses a LABEL layer whose ARG values changed, but not one after a changed file, so
  # a new commit with unchanged sources still relabels the images.
  revision >"$CONTEXT/REVISION"
}

revision() {
  local rev
  if [ -n "${QMTL_IMAGE_REVISION:-}" ]; then
    echo "$QMTL_IMAGE_REVISION"
    return
  fi
  rev="$(git rev-parse HEAD 2>/dev/null)" || { echo unknown; return; }
  [ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || rev="$rev-dirty"
  echo "$rev"
}

# Replaces `name`'s image by a build of `service` (extra podman build arguments after it) and
# removes the image it replaced, unless something still uses it: rebuilt inputs then leave no
# untagged image behind.
build_tagged() {
  local name="$1" service="$2" old new
  shift 2
  old="$(podman image inspect --format '{{.Id}}' "$name" 2>/dev/null || true)"
  podman build -q --isolation=chroot --format docker --layers \
    --file "deploy/images/$service/Containerfile" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --tag "$name" "$@" "$CONTEXT" >/dev/null \
    || die "podman build of $name failed (rerun the podman build without -q to see the step)"
  new="$(podman image inspect --format '{{.Id}}' "$name")"
  if [ -n "$old" ] && [ "$old" != "$new" ]; then
    podman rmi "$old" >/dev/null 2>&1 || true
  fi
}

build_images() {
  local version contracts rev service image start size_mb over=()
  version="$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
  contracts="$(tr -d '[:space:]' <schemas/VERSION)"
  rev="$(revision)"
  for service in "${SERVICES[@]}"; do
    image="$IMAGE_PREFIX$service"
    start=$SECONDS
    say "image: building $image:$version from $BASE_IMAGE"
    # The build stage gets a tag of its own, so the cache it is stays and the one it replaces
    # goes; the full build then reuses it.
    build_tagged "${IMAGE_PREFIX}build:$service" "$service" --target build
    build_tagged "$image:latest" "$service" --tag "$image:$version" \
      --build-arg "VERSION=$version" --build-arg "REVISION=$rev" \
      --build-arg "CONTRACTS_VERSION=$contracts"
    size_mb=$(( $(podman image inspect --format '{{.Size}}' "$image:latest") / 1000000 ))
    say "image: $image:$version ${size_mb} MB ($((SECONDS - start)) s)"
    [ "$size_mb" -le "$BUDGET_MB" ] || over+=("$image ${size_mb} MB")
  done
  if [ "${#over[@]}" -gt 0 ]; then
    say "over the ${BUDGET_MB} MB budget: ${over[*]} (deploy/images/README.md, Size)"
  fi
}

preflight
lock
if [ -n "$CONTEXT_ONLY" ]; then
  prepare_wheelhouse
  prepare_sources
  say "context: $CONTEXT (docker build -f deploy/images/<service>/Containerfile $CONTEXT)"
  exit 0
fi
build_base
prepare_wheelhouse
prepare_sources
build_images
