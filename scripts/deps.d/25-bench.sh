#!/usr/bin/env bash
# Debian packages the benchmarks compare svcprobe with (bench/run calls this step):
#   - dnsperf: the DNS server's limit, and a second opinion on latency (bench/accuracy.py)
#   - prometheus-blackbox-exporter: blackbox_exporter's DNS and TCP probers, driven over HTTP
#     on loopback with the benchmark's own configuration (its system service is never started)
# Idempotent: nothing is done when both are present; `apt-get update` runs at most once.
set -euo pipefail

log() { echo "   [25-bench] $*"; }
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

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
apt_opts=(-o DPkg::Lock::Timeout=300 -qq)
sudo_if_needed apt-get "${apt_opts[@]}" update
# policy-rc.d keeps the exporter's system service from being started on this machine.
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
    --no-install-recommends "${missing[@]}" >/dev/null

for tool in dnsperf prometheus-blackbox-exporter; do
    if ! have "$tool"; then
        log "$tool was installed but not found" >&2
        exit 1
    fi
done
log "installed ${missing[*]}"
