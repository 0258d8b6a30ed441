#!/usr/bin/env bash
# Builds kube-apiserver, kube-proxy and kubectl from the published k8s.io/kubernetes Go module.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod requires every staging module
# (k8s.io/api, k8s.io/client-go, ...) at the placeholder version v0.0.0 and replaces it with a
# directory that is not part of the module zip. So we make a throw-away main module that
# requires k8s.io/kubernetes@K8S_VERSION and replaces each staging module with its published twin
# v0.<minor>.<patch>. The staging list is read from the release's own go.mod, never hand-kept.
# A staging module that the module proxy does not offer at that version is replaced by an empty
# local stub: harmless when none of the built commands imports it, and a clear
# "no required module provides package" compile error when one does.
#
# Output: $SVCPROBE_CACHE/bin/{kube-apiserver,kube-proxy,kubectl}, stamp $SVCPROBE_CACHE/stamps/k8s.
# Warm runs (stamp matches and binaries report the right version) return in well under a second.
#
# Env: K8S_VERSION (default below), SVCPROBE_CACHE, FORCE=1 to rebuild.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.32.2}
BUILD_RECIPE=2   # bump when the flags or the command list below change
COMMANDS=(kube-apiserver kube-proxy kubectl)

cache=${SVCPROBE_CACHE:-$HOME/.cache/svcprobe}
bin=$cache/bin
stamps=$cache/stamps
work=$cache/build/k8s-$K8S_VERSION
stamp_value="$K8S_VERSION recipe=$BUILD_RECIPE"

log() { echo "   [k8s] $*"; }
die() { echo "   [k8s] ERROR: $*" >&2; exit 1; }

up_to_date() {
    [ "$(cat "$stamps/k8s" 2>/dev/null)" = "$stamp_value" ] || return 1
    local c
    for c in "${COMMANDS[@]}"; do [ -x "$bin/$c" ] || return 1; done
    "$bin/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes $K8S_VERSION" || return 1
    "$bin/kube-proxy" --version 2>/dev/null | grep -qx "Kubernetes $K8S_VERSION" || return 1
}

if [ "${FORCE:-0}" != 1 ] && up_to_date; then
    log "kube-apiserver, kube-proxy, kubectl $K8S_VERSION present"
    exit 0
fi

command -v go >/dev/null || die "go is not on PATH (needs Go >= 1.23)"
command -v python3 >/dev/null || die "python3 is not on PATH"
[[ $K8S_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "K8S_VERSION must look like v1.33.13, got $K8S_VERSION"
minor=${BASH_REMATCH[1]}
staging_version="v0.${K8S_VERSION#v1.}"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
started=$(date +%s)
log "building kube-apiserver, kube-proxy, kubectl $K8S_VERSION with $(go version | awk '{print $3}') in $work"

json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1]) or "")' "$1"; }

dl=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" || true)
err=$(printf '%s' "$dl" | json_field Error)
[ -z "$err" ] || die "cannot download k8s.io/kubernetes@$K8S_VERSION: $err"
upstream_gomod=$(printf '%s' "$dl" | json_field GoMod)
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$upstream_gomod")
[ "${#staging[@]}" -gt 10 ] || die "found only ${#staging[@]} staging replaces in $upstream_gomod"
upstream_go=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream_gomod")

rm -rf "$work"
mkdir -p "$work/stub" "$bin" "$stamps"
cd "$work"
cat >go.mod <<EOF
module svcprobe.invalid/k8sbins

go $upstream_go
EOF
# Only the main module's go/godebug lines set the runtime defaults: keep upstream's.
sed -n 's/^godebug .*/&/p' "$upstream_gomod" >>go.mod

stubbed=()
for m in "${staging[@]}"; do
    r=$(go mod download -json "$m@$staging_version" 2>/dev/null | json_field Error || true)
    if [ -z "$r" ]; then
        go mod edit -replace="$m=$m@$staging_version"
    else
        d=stub/${m#k8s.io/}
        mkdir -p "$d"
        printf 'module %s\n\ngo %s\n' "$m" "$upstream_go" >"$d/go.mod"
        go mod edit -replace="$m=./$d"
        stubbed+=("$m")
    fi
done
[ "${#stubbed[@]}" = 0 ] || log "not offered by the module proxy at $staging_version, stubbed: ${stubbed[*]}"
go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"

{
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in "${COMMANDS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    printf ')\n'
} >tools.go

log "go mod tidy"
go mod tidy

commit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("Origin",{}).get("Hash",""))' \
    "$(printf '%s' "$dl" | json_field Info)" 2>/dev/null || true)
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=$date"
    [ -z "$commit" ] || ld="$ld -X $p.gitCommit=$commit"
done

pkgs=()
for c in "${COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
log "go build ${COMMANDS[*]}"
mkdir -p out
go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ld" -o out/ "${pkgs[@]}"
for c in "${COMMANDS[@]}"; do install -m 0755 "out/$c" "$bin/$c"; done
rm -rf out

"$bin/kube-apiserver" --version
"$bin/kube-proxy" --version
"$bin/kubectl" version --client 2>/dev/null | head -1
echo "$stamp_value" >"$stamps/k8s"
log "done in $(( $(date +%s) - started ))s"
