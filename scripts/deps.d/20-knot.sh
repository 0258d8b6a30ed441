#!/usr/bin/env bash
# Knot DNS (Debian package `knot`: knotd, knotc, kzonecheck) for the integration tests
# (tests/integration/knot.py) and the benchmarks (bench/run).
# Idempotent and quick when present. The package's own system service is never started:
# the tests and benchmarks run knotd themselves, with their own config, on loopback.
set -euo pipefail

log() { echo "   [20-knot] $*"; }
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

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
apt_opts=(-o DPkg::Lock::Timeout=300 -qq)
sudo_if_needed apt-get "${apt_opts[@]}" update
# policy-rc.d keeps the package's service from being started on this machine.
policy=/usr/sbin/policy-rc.d
created_policy=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | sudo_if_needed tee "$policy" >/dev/null
    sudo_if_needed chmod +x "$policy"
    created_policy=1
fi
cleanup() { if [ -n "$created_policy" ]; then sudo_if_needed rm -f "$policy"; fi; }
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get "${apt_opts[@]}" install -y \
    --no-install-recommends knot >/dev/null

if ! have_knot; then
    log "knot was installed but knotd/knotc were not found" >&2
    exit 1
fi
log "knot $(PATH=/usr/sbin:$PATH knotd --version 2>&1 | awk 'NR==1{print $NF}') installed"
