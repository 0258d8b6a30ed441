#!/usr/bin/env bash
# Debian packages the benchmarks compare svcprobe with (bench/run calls this step):
#   - dnsperf: the DNS server's limit, and a second opinion on latency (bench/accuracy.py)
#   - prometheus-blackbox-exporter: blackbox_exporter's DNS and TCP probers, driven over HTTP
#     on loopback with the benchmark's own configuration (its system service is never started)
# Idempotent: nothing is done when both are present; `apt-get update` runs at most once.
set -euo pipefail

log() { echo "   [25-bench] $*"; }
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

have() {
    local dir
    for dir in /usr/bin /usr/sbin /bin /sbin; do
        [ -x "$dir/$1" ] && return 0
    done
    command -v "$1" >/dev/null 2>&1
}

missing=()
have dnsperf || missing+=(dnsperf)
have prometheus-blackbox-exporter || missing+=(prometheus-blackbox-exporter)
if [ ${#missing[@]} -eq 0 ]; then
    log "dnsperf and prometheus-blackbox-exporter present"
    exit 0
fi

log "installing Debian package(s) ${missing[*]}"
apt_install "${missing[@]}"

for tool in dnsperf prometheus-blackbox-exporter; do
    if ! have "$tool"; then
        log "$tool was installed but not found" >&2
        exit 1
    fi
done
log "installed ${missing[*]}"
