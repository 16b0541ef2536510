#!/usr/bin/env bash
# One-command set-up of everything QMTL NextGen needs on a fresh machine, idempotent:
#   1. system packages (Debian): redis-server, maven, a JDK >= 17, Go (only if missing);
#   2. the Python venv in .venv with the project, the code generators, the generated
#      contracts package and the dev tools, pinned by constraints.txt;
#   3. the schema toolchain in .tools/: buf (PyPI buf-bin), protoc (grpcio-tools),
#      protoc-gen-openapiv2 (grpc-gateway, built by `go install` at a pinned version),
#      and the google/api protos copied from googleapis-common-protos;
#   4. a version report of every tool (left out with --quiet, as when another target runs it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
TOOLS="$ROOT/.tools"
GRPC_GATEWAY_VERSION="v2.33.0"

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
go_bin() { command -v go || echo /usr/local/go/bin/go; }

phase_system() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v mvn >/dev/null || missing+=(maven)
  command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
  command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || missing+=(golang-go)
  command -v chromium >/dev/null || missing+=(chromium)
  # promtool checks the alert rules; prometheus scrapes the services in a test (deploy/prometheus).
  command -v promtool >/dev/null || missing+=(prometheus)
  # make images: podman builds the service images on a base debootstrap makes (deploy/images).
  command -v podman >/dev/null || missing+=(podman)
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
  if [ "${#missing[@]}" -eq 0 ]; then
    say "system packages: redis-server, maven, java, go, chromium, prometheus, podman and debootstrap present"
    return
  fi
  say "system packages: installing ${missing[*]} with apt-get"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
  # The Debian package may start its own redis on 6379; ours is started by scripts/services/redis.sh.
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    $sudo service redis-server stop >/dev/null 2>&1 || true
  fi
  # Likewise Debian's prometheus (and its node exporter) on 9090/9100: tests start their own.
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    $sudo service prometheus stop >/dev/null 2>&1 || true
    $sudo service prometheus-node-exporter stop >/dev/null 2>&1 || true
  fi
}

phase_venv() {
  local stamp="$VENV/.qmtl-installed" want
  want="$(cat pyproject.toml runtime/pyproject.toml codegen/pyproject.toml generated/python/pyproject.toml services/gateway/pyproject.toml services/dag_manager/pyproject.toml services/sdk/pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "python venv: .venv up to date"
    return
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "python venv: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
  fi
  say "python venv: installing the project, code generators and dev tools (pinned by constraints.txt)"
  "$VENV/bin/python" -m pip install -q --upgrade "pip==24.3.1"
  # qmtl-contracts (generated/python) depends on qmtl-runtime-core (runtime/), which is on no
  # index: both are installed editable in one resolve.
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[dev]' -e ./runtime -e ./codegen -e ./generated/python \
    -e ./services/gateway -e ./services/dag_manager -e ./services/sdk
  echo "$want" >"$stamp"
}

phase_tools() {
  mkdir -p "$TOOLS/bin"
  # protoc is the one bundled with grpcio-tools, so its version moves with constraints.txt.
  cat >"$TOOLS/bin/protoc" <<WRAP
#!/usr/bin/env bash
exec "$VENV/bin/python" -m grpc_tools.protoc "\$@"
WRAP
  chmod +x "$TOOLS/bin/protoc"
  ln -sf "$VENV/bin/buf" "$TOOLS/bin/buf"
  say "schema toolchain: buf and protoc linked into .tools/bin"

  local gw="$TOOLS/bin/protoc-gen-openapiv2" stamp="$TOOLS/bin/.protoc-gen-openapiv2.version"
  if [ -x "$gw" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$GRPC_GATEWAY_VERSION" ]; then
    say "schema toolchain: protoc-gen-openapiv2 $GRPC_GATEWAY_VERSION present"
  else
    say "schema toolchain: building protoc-gen-openapiv2 $GRPC_GATEWAY_VERSION with go install (cached in Go's module cache)"
    GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod "$(go_bin)" install \
      "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$GRPC_GATEWAY_VERSION" \
      || die "go install of protoc-gen-openapiv2 failed"
    echo "$GRPC_GATEWAY_VERSION" >"$stamp"
  fi

  # google/api/*.proto come from the googleapis-common-protos wheel, never from the BSR.
  local site deps="$TOOLS/proto-deps/google/api"
  site="$("$VENV/bin/python" -c 'import os, google.api.annotations_pb2 as m; print(os.path.dirname(m.__file__))')"
  mkdir -p "$deps"
  cp "$site"/annotations.proto "$site"/http.proto "$site"/field_behavior.proto "$deps"/
  # google/rpc/code.proto: gRPC status names of the error catalogue (error_code_options.proto).
  mkdir -p "$TOOLS/proto-deps/google/rpc"
  cp "$site"/../rpc/code.proto "$TOOLS/proto-deps/google/rpc/"
  say "schema toolchain: google/api and google/rpc protos copied from googleapis-common-protos into .tools/proto-deps"
}

phase_versions() {
  say "tool versions:"
  {
    printf 'python\t%s\n' "$("$VENV/bin/python" --version | cut -d' ' -f2)"
    printf 'buf\t%s\n' "$("$TOOLS/bin/buf" --version)"
    printf 'protoc\t%s\n' "$("$TOOLS/bin/protoc" --version | cut -d' ' -f2)"
    printf 'mypy-protobuf\t%s\n' "$("$VENV/bin/protoc-gen-mypy" --version 2>&1 | awk '{print $NF}')"
    printf 'protoc-gen-openapiv2\t%s\n' "$(cat "$TOOLS/bin/.protoc-gen-openapiv2.version")"
    printf 'ruff\t%s\n' "$("$VENV/bin/ruff" --version | cut -d' ' -f2)"
    printf 'mypy\t%s\n' "$("$VENV/bin/mypy" --version | cut -d' ' -f2)"
    printf 'pytest\t%s\n' "$("$VENV/bin/pytest" --version 2>&1 | awk '{print $NF}')"
    printf 'redis-server\t%s\n' "$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"
    printf 'java\t%s\n' "$(java -version 2>&1 | head -1 | cut -d'"' -f2)"
    printf 'maven\t%s\n' "$(mvn -v 2>/dev/null | head -1 | sed 's/\x1b\[[0-9;]*m//g' | awk '{print $3}')"
    printf 'go\t%s\n' "$("$(go_bin)" version | awk '{print $3}')"
  } | column -t -s $'\t' | sed 's/^/    /'
}

# The Kubernetes manifest validator (deploy/k8s/validate, Go, pinned by go.sum): a cold build
# takes minutes, so it is made here rather than inside the first `make test`; no-op when fresh.
phase_k8s_validator() {
  bash deploy/k8s/validate/build.sh
  say "k8s manifest validator: .tools/bin/k8s-validate up to date"
}

phase_system
phase_venv
phase_tools
phase_k8s_validator
[ "${1:-}" = "--quiet" ] || phase_versions
