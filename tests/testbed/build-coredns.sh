#!/usr/bin/env bash
# Builds CoreDNS (default plugin set: kubernetes, hosts, rewrite, ...) with `go install` into the
# shared cache. Output: $SVCPROBE_CACHE/bin/coredns, stamp $SVCPROBE_CACHE/stamps/coredns.
# Env: COREDNS_VERSION (default below), SVCPROBE_CACHE, FORCE=1 to rebuild.
set -euo pipefail

COREDNS_VERSION=${COREDNS_VERSION:-v1.12.4}

cache=${SVCPROBE_CACHE:-$HOME/.cache/svcprobe}
bin=$cache/bin
stamps=$cache/stamps

log() { echo "   [coredns] $*"; }
die() { echo "   [coredns] ERROR: $*" >&2; exit 1; }

if [ "${FORCE:-0}" != 1 ] && [ -x "$bin/coredns" ] \
    && [ "$(cat "$stamps/coredns" 2>/dev/null)" = "$COREDNS_VERSION" ] \
    && "$bin/coredns" -version 2>/dev/null | grep -q "CoreDNS-${COREDNS_VERSION#v}"; then
    log "coredns $COREDNS_VERSION present"
    exit 0
fi

command -v go >/dev/null || die "go is not on PATH"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
mkdir -p "$bin" "$stamps"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
started=$(date +%s)
log "building coredns $COREDNS_VERSION with $(go version | awk '{print $3}')"
GOBIN=$tmp go install -trimpath \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
install -m 0755 "$tmp/coredns" "$bin/coredns"
"$bin/coredns" -version | head -1
echo "$COREDNS_VERSION" >"$stamps/coredns"
log "done in $(( $(date +%s) - started ))s"
