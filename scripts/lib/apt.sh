# Shared by scripts/deps.d/*.sh (source it): install Debian packages without starting their
# services. The tests run the daemons themselves (knotd, etcd, prometheus, blackbox_exporter),
# with their own configuration, on loopback or in their own network namespaces.

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# apt_install PACKAGE...: `apt-get update` then install, waiting for the dpkg lock; a
# policy-rc.d that refuses every service start is in place while the packages install.
apt_install() {
    local apt_opts=(-o DPkg::Lock::Timeout=300 -qq)
    local policy=/usr/sbin/policy-rc.d created_policy=""
    sudo_if_needed apt-get "${apt_opts[@]}" update
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | sudo_if_needed tee "$policy" >/dev/null
        sudo_if_needed chmod +x "$policy"
        created_policy=1
    fi
    local status=0
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get "${apt_opts[@]}" install -y \
        --no-install-recommends "$@" >/dev/null || status=$?
    if [ -n "$created_policy" ]; then sudo_if_needed rm -f "$policy"; fi
    return "$status"
}
