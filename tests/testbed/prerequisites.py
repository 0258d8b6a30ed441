"""What a machine needs before a bed can come up, and where the built binaries are.

Linux and root (network namespaces, iptables), a few tools on PATH (ip, openssl, etcd, nft,
iptables*), and kube-apiserver, kube-proxy, kubectl and coredns in BIN, which
scripts/install-test-deps builds (tests/testbed/build-*.sh via scripts/deps.d/50-testbed.sh).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tests.testbed.errors import TestBedError, TestBedUnavailable

CACHE = Path(os.environ.get("SVCPROBE_CACHE") or Path.home() / ".cache" / "svcprobe")
BIN = CACHE / "bin"


def binary(name: str) -> str:
    """Path of a binary built into the cache (kube-apiserver, kube-proxy, kubectl, coredns)."""
    return str(BIN / name)


def unavailable_reason() -> str | None:
    """Why the bed cannot run here (tests skip with this), or None when it can."""
    if not sys.platform.startswith("linux"):
        return f"the Kubernetes test bed needs Linux network namespaces (this is {sys.platform})"
    if os.geteuid() != 0:
        return "the Kubernetes test bed needs root (network namespaces, iptables)"
    return None


def check(proxy_mode: str) -> None:
    """Raises TestBedUnavailable (cannot run here at all) or TestBedError naming everything that
    is missing, with what to run to install it."""
    reason = unavailable_reason()
    if reason:
        raise TestBedUnavailable(reason)
    problems = []
    for tool in ("ip", "openssl", "etcd"):
        if not shutil.which(tool):
            problems.append(f"`{tool}` not on PATH")
    if proxy_mode == "iptables":
        for tool in ("iptables", "iptables-save", "iptables-restore"):
            if not shutil.which(tool):
                problems.append(f"`{tool}` not on PATH (kube-proxy iptables mode)")
    if not shutil.which("nft"):
        problems.append("`nft` not on PATH")
    for name in ("kube-apiserver", "kube-proxy", "kubectl", "coredns"):
        if not os.access(BIN / name, os.X_OK):
            problems.append(f"{BIN / name} missing")
    if problems:
        raise TestBedError(
            "test bed prerequisites missing: "
            + "; ".join(problems)
            + ". Install them with scripts/install-test-deps (runs scripts/deps.d/50-testbed.sh)."
        )
