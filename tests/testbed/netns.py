"""Network namespaces: running commands (also inside a namespace), the bridge and veth plumbing,
and removing namespaces together with every process inside them.

The bridge br0 lives in the control-plane namespace; every other namespace gets a veth pair whose
eth0 end is in that namespace and whose other end is plugged into br0. Each namespace also gets
its own /etc/netns/<ns>/resolv.conf, which `ip netns exec` shows to the processes inside as
/etc/resolv.conf. Deleting a namespace removes its interfaces, addresses, routes and
iptables/nftables rules with it.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.testbed.errors import TestBedError
from tests.testbed.topology import CP_IP, LINK_PREFIXLEN, SERVICE_CIDR

ETC_NETNS = Path("/etc/netns")


# ---------------------------------------------------------------------- running commands
def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    """Runs a command to completion (text output captured); with check, a non-zero exit raises
    TestBedError with the command and its output. A timeout always raises."""
    try:
        cp = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise TestBedError(f"timed out after {timeout}s: {shlex.join(argv)}") from exc
    if check and cp.returncode != 0:
        raise TestBedError(
            f"command failed ({cp.returncode}): {shlex.join(argv)}\n{cp.stderr.strip()}"
            f"\n{cp.stdout.strip()}".rstrip()
        )
    return cp


def run_in(netns: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess:
    """run() inside a namespace (`ip netns exec`); keyword arguments as for run()."""
    return run(["ip", "netns", "exec", netns, *argv], **kw)


def popen_in(netns: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen:
    """Starts a command inside a namespace; keyword arguments go to subprocess.Popen."""
    return subprocess.Popen(["ip", "netns", "exec", netns, *argv], **kw)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat.rsplit(")", 1)[-1].strip().startswith("Z")


# ---------------------------------------------------------------------- namespaces
def list_with_prefix(prefix: str) -> list[str]:
    """The namespaces named PREFIX-*: the ones a bed with this prefix made."""
    cp = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in cp.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix + "-")]


def _write_resolv_conf(netns: str, resolv: str) -> None:
    etc = ETC_NETNS / netns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(resolv)


def add_bridge_netns(netns: str, resolv: str) -> None:
    """Creates the control-plane namespace with the bridge br0 = CP_IP/16 (no uplink)."""
    _write_resolv_conf(netns, resolv)
    run(["ip", "netns", "add", netns])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "-n", netns, "link", "add", "br0", "type", "bridge"])
    run(["ip", "-n", netns, "addr", "add", f"{CP_IP}/{LINK_PREFIXLEN}", "dev", "br0"])
    run(["ip", "-n", netns, "link", "set", "br0", "up"])


def add(netns: str, ip: str, *, bridge_netns: str, host_if: str, resolv: str) -> None:
    """Creates `netns` with eth0=ip/16, its veth peer `host_if` plugged into br0 in
    `bridge_netns`, and `resolv` as its resolv.conf."""
    _write_resolv_conf(netns, resolv)
    run(["ip", "netns", "add", netns])
    run(
        ["ip", "-n", bridge_netns, "link", "add", host_if, "type", "veth",
         "peer", "name", "eth0", "netns", netns]
    )
    run(["ip", "-n", bridge_netns, "link", "set", host_if, "master", "br0", "up"])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "-n", netns, "addr", "add", f"{ip}/{LINK_PREFIXLEN}", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    # Only the Service CIDR is routed (to the cp namespace, which does not forward): traffic
    # to a ClusterIP without kube-proxy rules goes nowhere, and there is no default route.
    run(["ip", "-n", netns, "route", "add", SERVICE_CIDR, "via", CP_IP])


def kill_processes(namespaces: Sequence[str], *, grace: float = 10) -> None:
    """SIGTERM every process in the namespaces, SIGKILL what is left after `grace` seconds.
    (Children of the caller become zombies: the caller reaps them.)"""
    pids: set[int] = set()
    for netns in namespaces:
        out = run(["ip", "netns", "pids", netns], check=False).stdout.split()
        pids.update(int(p) for p in out if p.isdigit())
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            pids = {pid for pid in pids if alive(pid)}
            if pids:
                time.sleep(0.05)
        if not pids:
            break


def delete(netns: str) -> None:
    """Deletes an (already emptied, see kill_processes) namespace and its /etc/netns directory."""
    run(["ip", "netns", "del", netns], check=False)
    shutil.rmtree(ETC_NETNS / netns, ignore_errors=True)


def remove_etc_dirs(prefix: str) -> None:
    """Removes /etc/netns/PREFIX-*, and /etc/netns itself if that leaves it empty (it did not
    exist before the bed)."""
    for d in ETC_NETNS.glob(f"{prefix}-*") if ETC_NETNS.exists() else []:
        shutil.rmtree(d, ignore_errors=True)
    try:
        ETC_NETNS.rmdir()  # only if empty
    except OSError:
        pass


def flush_neighbour(namespaces: Sequence[str], ip: str) -> None:
    """Forgets the neighbour (ARP) entry for `ip` in each namespace."""
    for netns in namespaces:
        run(["ip", "-n", netns, "neigh", "flush", "to", ip], check=False)
