#!/usr/bin/env bash
# The two C libraries whose resolvers svcprobe's search-walk emulation is checked against
# (tests/support/libc.py, tests/integration/test_libc_resolvers.py): a small getaddrinfo client
# (tests/support/gai_client.c) is built once with gcc against glibc and once with musl-gcc
# against musl, into the shared cache, by the tests themselves.
#   - Debian: gcc, libc6-dev (glibc headers), musl, musl-dev, musl-tools (musl-gcc)
#   - unshare and mount (util-linux, mount; part of every Debian install, checked anyway): the
#     client runs in a private mount namespace that sees the test's resolv.conf
# Idempotent and quick when present.
set -euo pipefail

log() { echo "   [30-libc] $*"; }
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

missing() {
    local need=()
    command -v gcc >/dev/null 2>&1 || need+=(gcc)
    installed libc6-dev || need+=(libc6-dev)
    installed musl || need+=(musl)
    installed musl-dev || need+=(musl-dev)
    command -v musl-gcc >/dev/null 2>&1 || need+=(musl-tools)
    command -v unshare >/dev/null 2>&1 || need+=(util-linux)
    command -v mount >/dev/null 2>&1 || need+=(mount)
    echo "${need[@]}"
}

versions() {
    echo "gcc $(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)," \
        "glibc $(dpkg-query -W -f='${Version}' libc6-dev 2>/dev/null)," \
        "musl $(dpkg-query -W -f='${Version}' musl-dev 2>/dev/null)"
}

need=$(missing)
if [ -z "$need" ]; then
    log "$(versions) present"
    exit 0
fi

log "installing Debian packages: $need"
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt_install $need

need=$(missing)
if [ -n "$need" ]; then
    log "still missing after the install: $need" >&2
    exit 1
fi
log "$(versions) installed"
