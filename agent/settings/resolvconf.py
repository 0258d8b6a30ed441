"""Reading a pod's /etc/resolv.conf the way the stub resolvers do.

Only what the agent needs: nameservers, the search list, ndots, and the cluster domain
derived from the search list (`<ns>.svc.<zone> svc.<zone> <zone>` written by the kubelet).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    ndots: int = 1  # the libc default when no options line sets it
    # (timeout and attempts are not read: the agent's own dns.timeout_seconds and dns.attempts
    # decide how long it waits, so that a verdict does not depend on each node's file.)

    @property
    def cluster_domain(self) -> str | None:
        """`<zone>` from a `svc.<zone>` search entry, as the kubelet writes them."""
        s = self.search
        # The kubelet's run `<ns>.svc.<zone> svc.<zone> <zone>` first: in a namespace named
        # "svc" the first entry (`svc.svc.<zone>`) also starts with "svc.".
        for i in range(1, len(s) - 1):
            zone = s[i + 1]
            if s[i] == "svc." + zone and s[i - 1].endswith(".svc." + zone):
                return zone
        for entry in s:
            if entry.startswith("svc."):
                return entry[len("svc.") :]
        return None

    @property
    def host_search(self) -> tuple[str, ...]:
        """Search entries beyond the three the kubelet adds for the cluster zone."""
        zone = self.cluster_domain
        if zone is None:
            return self.search
        return tuple(e for e in self.search if e != zone and not e.endswith("." + zone))


def parse(text: str) -> ResolvConf:
    nameservers: list[str] = []
    search: tuple[str, ...] = ()
    ndots = 1
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        key, *values = line.split()
        if key == "nameserver" and values:
            nameservers.append(values[0])
        elif key in ("search", "domain"):  # the last of either wins, as in libc
            # "." (the root) is dropped, as the kubelet drops it when it builds a ClusterFirst
            # pod's search list from the node's (pkg/kubelet/network/dns, parseResolvConf).
            search = tuple(v.rstrip(".").lower() for v in values if v != ".")
        elif key == "options":
            for opt in values:
                name, _, val = opt.partition(":")
                if name == "ndots":
                    try:
                        ndots = min(int(val), 15)
                    except ValueError:
                        continue  # libc ignores malformed options too
    return ResolvConf(tuple(nameservers), search, ndots)


def read(path: str) -> ResolvConf:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse(fh.read())
