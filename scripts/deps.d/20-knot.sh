#!/usr/bin/env bash
# Knot DNS (Debian package `knot`: knotd, knotc, kzonecheck) for the integration tests
# (tests/support/knot.py) and the benchmarks (bench/run).
# Idempotent and quick when present. The package's own system service is never started:
# the tests and benchmarks run knotd themselves, with their own config, on loopback.
set -euo pipefail

log() { echo "   [20-knot] $*"; }
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

have_knot() {
    local dir
    for dir in /usr/sbin /usr/bin /sbin /bin; do
        [ -x "$dir/knotd" ] && [ -x "$dir/knotc" ] && return 0
    done
    command -v knotd >/dev/null 2>&1 && command -v knotc >/dev/null 2>&1
}

if have_knot; then
    log "knot $(PATH=/usr/sbin:$PATH knotd --version 2>&1 | awk 'NR==1{print $NF}') present"
    exit 0
fi

log "installing Debian package knot"
apt_install knot

if ! have_knot; then
    log "knot was installed but knotd/knotc were not found" >&2
    exit 1
fi
log "knot $(PATH=/usr/sbin:$PATH knotd --version 2>&1 | awk 'NR==1{print $NF}') installed"
