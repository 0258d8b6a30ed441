#!/usr/bin/env bash
# Prerequisites of the end-to-end tier (tests/e2e, marker `e2e`; docs/testbed.md):
#   - Debian: etcd-server (etcd 3.4), iptables, nftables, iproute2, openssl
#   - Go-built, cached in $SVCPROBE_CACHE/bin with a version stamp in $SVCPROBE_CACHE/stamps:
#     kube-apiserver, kube-proxy, kubectl (tests/testbed/build-k8s.sh) and CoreDNS
#     (tests/testbed/build-coredns.sh). Cold: tens of minutes on 2 cores; warm: a second.
# The test bed needs Linux and root (network namespaces); elsewhere this step does nothing and
# the e2e tests skip with that reason.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib/apt.sh
. "$repo/scripts/lib/apt.sh"
log() { echo "   [50-testbed] $*"; }

if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
    log "not Linux/root: the e2e test bed cannot run here, nothing to install"
    exit 0
fi

# --- Debian packages ---------------------------------------------------------------------------
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v iptables >/dev/null && command -v iptables-restore >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v openssl >/dev/null || need+=(openssl)
if [ "${#need[@]}" = 0 ]; then
    log "etcd $(etcd --version 2>/dev/null | awk 'NR==1{print $3}'), iptables, nft, ip, openssl present"
else
    log "installing Debian packages: ${need[*]}"
    apt_install "${need[@]}"
fi

# --- Go-built binaries --------------------------------------------------------------------------
bash "$repo/tests/testbed/build-k8s.sh"
bash "$repo/tests/testbed/build-coredns.sh"
