#!/usr/bin/env bash
# Test prerequisites for the chart, alert rules and dashboard (tests/chart/, marker `chart`):
#   - Debian's prometheus package (prometheus + promtool)
#   - helm v3 and Grafana's dashboard-linter, built with Go into the shared cache (helm is also
#     what tests/e2e/test_helm_install.py installs the chart into the test bed with)
#     (cloudflare/pint is not served by the Go module proxy reachable here, so the rules are
#     linted by `promtool check rules --lint` and by tests/chart/test_rules_lint.py instead)
#   - svcprobe-promql-inspect (tests/chart/promql_inspect): Prometheus's own PromQL parser, used to
#     check that rules and dashboard use only exported metric names and labels
#   - kubernetes-validate (offline Kubernetes schemas) in the project venv
#   - the container image's pinned wheels (requirements-image.txt and the Dockerfile's build
#     pins) in $cache/wheels/image, so tests/chart/test_dockerfile.py installs them offline
# Idempotent: each tool is skipped when the pinned version is already present.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${SVCPROBE_CACHE:-$HOME/.cache/svcprobe}
bin=$cache/bin
stamps=$cache/stamps
mkdir -p "$bin" "$stamps"

HELM_VERSION=v3.22.0
HELM_K8S_MINOR=37 # helm v3.22.0 builds against k8s.io/client-go v0.37
DASHBOARD_LINTER_VERSION=v0.0.0-20231114210226-c458893a5731
KUBERNETES_VALIDATE_VERSION=1.37.0

log() { echo "   [40-monitoring] $*"; }
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

# --- Debian: prometheus + promtool -----------------------------------------------------------
if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    log "prometheus $(promtool --version 2>&1 | awk 'NR==1{print $3}') present"
else
    log "installing Debian package prometheus"
    apt_install prometheus
fi

# --- Go-built tools ---------------------------------------------------------------------------
have() { [ -x "$bin/$1" ] && [ "$(cat "$stamps/$1" 2>/dev/null)" = "$2" ]; }

if have helm "$HELM_VERSION+k8s1.$HELM_K8S_MINOR"; then
    log "helm $HELM_VERSION present"
else
    log "building helm $HELM_VERSION"
    # The same -X flags as helm's own release build: its version, and the Kubernetes version
    # that `helm template`/`helm lint` assume (that of the client-go it is built with).
    GOBIN=$bin GOFLAGS=-buildvcs=false go install -ldflags "\
-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" \
        "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    echo "$HELM_VERSION+k8s1.$HELM_K8S_MINOR" >"$stamps/helm"
fi

# dashboard-linter has no tagged release; the proxy serves this pseudo-version (the one the
# kubernetes-mixin pins) but neither its version list (which `go install` asks for) nor a checksum
# database entry. So: download that exact version and build it from its own go.mod/go.sum.
if have dashboard-linter "$DASHBOARD_LINTER_VERSION"; then
    log "dashboard-linter $DASHBOARD_LINTER_VERSION present"
else
    log "building dashboard-linter $DASHBOARD_LINTER_VERSION"
    linter_dir=$(GONOSUMDB=github.com/grafana/dashboard-linter GOFLAGS=-mod=mod \
        go mod download -json "github.com/grafana/dashboard-linter@$DASHBOARD_LINTER_VERSION" |
        python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["Dir"]) if "Dir" in d else sys.exit(d.get("Error"))')
    (cd "$linter_dir" && GOFLAGS=-buildvcs=false go build -trimpath -o "$bin/dashboard-linter" .)
    echo "$DASHBOARD_LINTER_VERSION" >"$stamps/dashboard-linter"
fi

# Local helper: its version is the hash of its sources, so an edit rebuilds it.
inspect_src=$repo/tests/chart/promql_inspect
if [ -d "$inspect_src" ]; then
    inspect_version=$(cat "$inspect_src"/go.mod "$inspect_src"/go.sum "$inspect_src"/*.go | sha256sum | cut -c1-16)
    if [ -x "$bin/svcprobe-promql-inspect" ] && [ "$(cat "$stamps/svcprobe-promql-inspect" 2>/dev/null)" = "$inspect_version" ]; then
        log "svcprobe-promql-inspect $inspect_version present"
    else
        log "building svcprobe-promql-inspect $inspect_version"
        (cd "$inspect_src" && GOFLAGS=-buildvcs=false go build -trimpath -o "$bin/svcprobe-promql-inspect" .)
        echo "$inspect_version" >"$stamps/svcprobe-promql-inspect"
    fi
fi

# --- Python: kubernetes-validate in the project venv -----------------------------------------
py=$repo/.venv/bin/python
if [ -x "$py" ]; then
    installed=$("$py" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null || true)
    if [ "$installed" = "$KUBERNETES_VALIDATE_VERSION" ]; then
        log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION present"
    else
        log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
        "$py" -m pip install --quiet "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    fi
else
    log "no $repo/.venv yet (make venv creates it); kubernetes-validate not installed"
fi

# --- Wheels for the Dockerfile install test ----------------------------------------------------
wheels=$cache/wheels/image
build_reqs=$(sed -n 's/^ARG BUILD_REQUIREMENTS="\(.*\)"$/\1/p' "$repo/Dockerfile")
image_version=$( { cat "$repo/requirements-image.txt"; echo "$build_reqs"; } | sha256sum | cut -c1-16)
if [ -x "$py" ]; then
    if [ "$(cat "$stamps/image-wheels" 2>/dev/null)" = "$image_version" ]; then
        log "image wheels $image_version present"
    else
        log "downloading image wheels $image_version"
        mkdir -p "$wheels"
        # shellcheck disable=SC2086 # BUILD_REQUIREMENTS is a space-separated list
        "$py" -m pip download --quiet --no-deps --only-binary=:all: --dest "$wheels" \
            -r "$repo/requirements-image.txt" $build_reqs
        echo "$image_version" >"$stamps/image-wheels"
    fi
fi
