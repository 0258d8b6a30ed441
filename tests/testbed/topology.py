"""Where everything in the test bed lives: addresses, ranges, ports, namespace names.

The numbers are kept here, in one place, so that the other modules and the tests agree on them.
Nothing in this module touches the machine. With PREFIX "svcpe2e" (the default, see
SVCPROBE_TESTBED_PREFIX)::

    PREFIX-cp       bridge br0 198.19.0.1/16; etcd on 127.0.0.1:2379, kube-apiserver :6443
    PREFIX-node1..  198.19.0.2, .3, ...; kube-proxy; pod-like resolv.conf -> kube-dns ClusterIP
    PREFIX-dns1..   CoreDNS replicas 198.19.1.2, .3, ... (the kube-system/kube-dns endpoints)
    PREFIX-be-NAME  TCP backends ("pods") 198.19.1.10 and up, behind hand-made EndpointSlices

    Service CIDR 198.18.0.0/16: 198.18.0.1 = default/kubernetes, 198.18.0.10 = kube-system/kube-dns

All of these addresses are in 198.18.0.0/15 and exist only inside namespaces the bed creates.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Collection

from tests.testbed.errors import TestBedError

SERVICE_CIDR = "198.18.0.0/16"
KUBERNETES_IP = "198.18.0.1"
KUBE_DNS_IP = "198.18.0.10"
CP_IP = "198.19.0.1"
LINK_PREFIXLEN = 16  # every namespace's eth0 is on 198.19.0.0/16, through the bridge
POD_CIDR = "198.19.1.0/24"
FIRST_BACKEND_HOST = 10
CLUSTER_DOMAIN = "cluster.local"
API_PORT = 6443
MANAGED_BY = "svcprobe-testbed"

DEFAULT_PREFIX = "svcpe2e"

# resolv.conf of every namespace that is not a "pod" (cp, CoreDNS, backends): nothing listens there.
NO_RESOLVER = "nameserver 127.0.0.1\n"


@dataclasses.dataclass
class Backend:
    """A TCP server in its own network namespace, standing in for a pod."""

    name: str
    ip: str
    ports: tuple[int, ...]
    netns: str
    running: bool = True


@dataclasses.dataclass
class Node:
    name: str
    ip: str
    netns: str
    namespace: str  # the Kubernetes namespace of the "pod" whose resolv.conf the netns gets


def cp_netns(prefix: str) -> str:
    """The control-plane namespace: the bridge, etcd and kube-apiserver."""
    return f"{prefix}-cp"


def node_netns(prefix: str, node: str) -> str:
    return f"{prefix}-{node}"


def node_ip(index: int) -> str:
    """Address of the node at `index` (0-based, in the order the nodes were given)."""
    return f"198.19.0.{2 + index}"


def dns_netns(prefix: str, replica: int) -> str:
    return f"{prefix}-dns{replica}"


def dns_ip(replica: int) -> str:
    """Address of CoreDNS replica `replica` (1-based)."""
    return f"198.19.1.{1 + replica}"


def backend_netns(prefix: str, name: str) -> str:
    return f"{prefix}-be-{name}"


def pod_resolv_conf(namespace: str) -> str:
    """The resolv.conf a pod in Kubernetes namespace `namespace` gets (node namespaces use it)."""
    return (
        f"search {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
        f"nameserver {KUBE_DNS_IP}\n"
        "options ndots:5\n"
    )


class BackendAddresses:
    """Hands out backend addresses from POD_CIDR (.10 and up), round-robin: a freed address is
    reused as late as possible."""

    def __init__(self) -> None:
        self._next_host = FIRST_BACKEND_HOST
        self._ever_used: set[str] = set()

    def allocate(self, in_use: Collection[str]) -> tuple[str, bool]:
        """The next address not in `in_use`, and whether it was handed out before (then other
        namespaces may still have a neighbour (ARP) entry for it with a deleted namespace's MAC
        address, which the caller must flush)."""
        net = ipaddress.ip_network(POD_CIDR)
        hosts = list(range(FIRST_BACKEND_HOST, net.num_addresses - 1))
        start = hosts.index(self._next_host) if self._next_host in hosts else 0
        for host in hosts[start:] + hosts[:start]:
            ip = str(net.network_address + host)
            if ip in in_use:
                continue
            self._next_host = host + 1
            reused = ip in self._ever_used
            self._ever_used.add(ip)
            return ip, reused
        raise TestBedError("no free backend address left in " + POD_CIDR)
