"""The settings schema: one tree of frozen dataclasses, each field documented.

The field metadata (`doc`, `min`, `max`, `choices`) is the single source of validation
(`agent.settings.load`) and of the configuration reference (docs/configuration.md is
generated from it and checked by a test).
"""

from __future__ import annotations

import dataclasses
from typing import Any

ENV_PREFIX = "SVCPROBE_"
FORMS = ("short", "namespace", "svc", "fqdn")
QTYPES = ("A", "AAAA")
RESOLVERS = ("glibc", "musl")  # agent.resolvers.FLAVOURS (settings sit below every other stage)
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"doc": text, **extra}


def f(default: Any, doc: str, **extra: Any) -> Any:
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults")
    return dataclasses.field(default=default, metadata=_doc(doc, **extra))


@dataclasses.dataclass(frozen=True)
class InventorySettings:
    file: str = f("", "Static inventory file (Kubernetes Service/EndpointSlice manifests, e.g. "
                  "`kubectl get svc,endpointslices -A -o yaml`). Empty: discover from the Kubernetes API.")
    reload_seconds: float = f(10.0, "How often the static inventory file is checked for changes. "
                              "A bad file is reported and the last good inventory kept.", min=0.5)


@dataclasses.dataclass(frozen=True)
class DnsSettings:
    nameservers: tuple[str, ...] = f((), "DNS servers of the `resolver` path, `IP` or `IP:PORT` "
                                     "(`[IPv6]:PORT`). Default: the nameservers of `resolv_conf`.")
    search: tuple[str, ...] = f((), "Extra host search domains appended after the cluster ones, as "
                                "the kubelet appends the node's. Default: the non-cluster entries of "
                                "`resolv_conf` (only when it is read).")
    ndots: int = f(5, "ndots of the emulated pod resolver. Default: from `resolv_conf` when it is "
                   "read, else 5 (the kubelet's).", min=0, max=15)
    cluster_domain: str = f("cluster.local", "The cluster DNS zone. Default: derived from the "
                            "`svc.<zone>` search entry of `resolv_conf` when it is read.")
    resolv_conf: str = f("/etc/resolv.conf", "Where DNS defaults come from. It is read only when "
                         "`nameservers` is not configured, so a configured server is never mixed "
                         "with the host's resolver settings.")
    timeout_seconds: float = f(2.0, "Wait for one answer before retrying.", min=0.01, max=30)
    attempts: int = f(2, "Tries per query name (the first plus retries) before a lookup "
                      "times out; retries move to the next nameserver.", min=1, max=5)
    forms: tuple[str, ...] = f(FORMS, "Name forms to resolve per Service: `short` (searched from "
                               "a pod in the Service's namespace), `namespace` (svc.ns), `svc` "
                               "(svc.ns.svc), `fqdn` (absolute).", choices=FORMS)
    qtypes: tuple[str, ...] = f(QTYPES, "Address record types to ask for. The family a Service "
                                "does not have is expected to answer NODATA.", choices=QTYPES)
    srv: bool = f(True, "Also check SRV records of named ports (absolute name).")
    hostnames_per_service: int = f(3, "Endpoint hostname records checked per headless Service: "
                                   "`<hostname>.<service>.<ns>.svc.<zone>`, the StatefulSet pod names, "
                                   "the first N hostnames in order (0: none), so a 500-replica "
                                   "StatefulSet costs what a 3-replica one does.", min=0, max=100)
    ptr: bool = f(True, "Also check PTR records: each ClusterIP names its Service, and the address "
                  "of each checked hostname names `<hostname>.<service>.<ns>.svc.<zone>`. Turn off "
                  "when the Corefile's `kubernetes` line does not list `in-addr.arpa ip6.arpa` (the "
                  "default Corefiles do).")
    resolvers: tuple[str, ...] = f(RESOLVERS, "C libraries whose search walk is emulated for relative "
                                   "names: `glibc` (Debian, Ubuntu, RHEL images) and `musl` (Alpine). "
                                   "Each lookup is asked once and judged as each would walk it; a check "
                                   "fails when any of them would fail, and says which. They differ when "
                                   "a name has at least `ndots` dots (musl then skips the search list), "
                                   "on NODATA and SERVFAIL (glibc goes on to the next name, musl stops) "
                                   "and on search lines of 255 characters or more (musl ignores them).",
                                   choices=RESOLVERS)
    query_budget_per_second: float = f(100.0, "Most DNS queries per second this agent sends "
                                       "(token bucket over every path and form). With sharding an "
                                       "agent needs about (Services x replicas / agents + canaries) x "
                                       "20 queries per interval; when the budget is lower, sweeps take "
                                       "longer (svcprobe_sweep_lag_seconds).", min=0.1)
    query_budget_burst: int = f(100, "Token bucket size: queries that may go out at once.", min=1)
    grace_seconds: float = f(30.0, "After a Service or its endpoints change, a differing answer "
                             "counts as converging, not `wrong_answer`, for this long (TTL + caches). "
                             "A change made before the agent or `check` started counts from when the "
                             "API recorded it: the Service's or an EndpointSlice's creation, or the "
                             "slice's `endpoints.kubernetes.io/last-change-trigger-time`.",
                             min=0)
    sockets: int = f(8, "UDP sockets per nameserver that queries are spread over; each is replaced "
                     "after 2,000 queries so queries to a Service IP keep taking fresh conntrack "
                     "5-tuples.", min=1, max=256)


@dataclasses.dataclass(frozen=True)
class CorednsSettings:
    """Options of the cluster's Corefile `kubernetes` block that change what it answers. Set the
    ones your Corefile has, so svcprobe expects what CoreDNS is configured to say."""

    ignore_empty_service: bool = f(False, "The Corefile has `ignore empty_service`: a ClusterIP Service "
                                   "without a ready endpoint answers NXDOMAIN (A, AAAA and SRV), not "
                                   "its ClusterIP.")
    noendpoints: bool = f(False, "The Corefile has `noendpoints`: CoreDNS serves no endpoint data, so "
                          "a headless Service answers NXDOMAIN, whatever its endpoints.")
    namespaces: tuple[str, ...] = f((), "The namespaces of the Corefile's `namespaces` line (empty: every "
                                    "namespace, CoreDNS's default). Services elsewhere are not in cluster "
                                    "DNS: they get TCP checks only. (`namespace_labels` has no setting: "
                                    "list the namespaces it selects here.)")


@dataclasses.dataclass(frozen=True)
class KubernetesSettings:
    kubeconfig: str = f("", "Kubeconfig file for running outside the cluster. Empty: the pod's "
                        "ServiceAccount when in a cluster, else $KUBECONFIG or ~/.kube/config.")
    context: str = f("", "Kubeconfig context (empty: the current one).")
    page_size: int = f(500, "Objects per page of the initial list (limit/continue).", min=1, max=10000)
    watch_timeout_seconds: float = f(300.0, "Server-side watch timeout; each watch asks for a random "
                                     "value between this and twice it, so agents do not reconnect "
                                     "in lockstep.", min=10)
    read_timeout_seconds: float = f(90.0, "Client-side: a watch that sends nothing (not even a "
                                    "bookmark) for this long is treated as dead and reopened.", min=5)
    max_event_bytes: int = f(4 * 2**20, "Longest watch event accepted, in bytes (the API server "
                             "stores objects of at most about 1.5 MiB). A longer one ends the watch "
                             "as `invalid` (svcprobe_watch_restarts_total) and is retried with backoff, "
                             "so memory stays bounded whatever a server or proxy sends. A list page may "
                             "be 8 times this; a larger one is asked for again in smaller pages.",
                             min=65536, max=256 * 2**20)
    max_list_pages: int = f(2000, "Most pages one list may take (at `page_size` objects each). A list "
                            "that goes on longer, or whose continue token comes back, is abandoned "
                            "as `invalid` and retried with backoff.", min=1)


@dataclasses.dataclass(frozen=True)
class SelectionSettings:
    namespaces: tuple[str, ...] = f((), "Probe only Services in these namespaces (empty: all). "
                                    "Canaries are always probed.")
    exclude_namespaces: tuple[str, ...] = f((), "Never probe Services in these namespaces.")
    label_selector: str = f("", "Probe only Services whose labels match (`key=value`, `key!=value`, "
                            "`key`, `!key`, comma-separated, all must hold).")
    services: tuple[str, ...] = f((), "Probe only these `NAMESPACE/NAME` Services (empty: every Service "
                                  "the other keys select). Canaries are always probed.")
    canaries: tuple[str, ...] = f((), "Extra `NAMESPACE/NAME` Services every agent probes, besides "
                                  "`default/kubernetes`, the cluster DNS Service and its own Service. "
                                  "A canary with more than 50 ready endpoints is probed like any other "
                                  "Service (by `sharding.replicas` agents) so canaries stay cheap.")


@dataclasses.dataclass(frozen=True)
class ShardingSettings:
    replicas: int = f(3, "How many agents probe each (non-canary) Service, chosen by rendezvous "
                      "hashing over the agents found in `peers_service`. 0: every agent probes "
                      "everything.", min=0)
    peers_service: str = f("", "`NAMESPACE/NAME` of the agents' own headless Service, whose "
                           "EndpointSlices list the agents. Empty: `<pod_namespace>/svcprobe`.")


@dataclasses.dataclass(frozen=True)
class PathSettings:
    dns_service: str = f("kube-system/kube-dns", "`NAMESPACE/NAME` of the cluster DNS Service: its "
                         "ClusterIP is the `cluster_ip` path and each ready endpoint an `endpoint` path.")
    cluster_ip: bool = f(True, "Also resolve the canary Services' FQDNs through the cluster DNS "
                         "Service IP (every agent, every sweep).")
    endpoints: bool = f(True, "Also resolve the canary Services' FQDNs at every cluster DNS replica "
                        "directly, so one sick replica shows up by its address. Replicas the "
                        "EndpointSlices list as not ready are asked too and shown, never counted as "
                        "failing (they take no traffic).")
    sample_services: int = f(4, "Besides the canaries, this many of the Services this agent owns are "
                             "asked over the `cluster_ip`, `endpoint` and `nodelocal` paths each sweep, "
                             "recently changed ones first, the rest in turn: a replica serving stale "
                             "data for any Service is found within a few sweeps. Costs about "
                             "`sample_services x (replicas + 2) x qtypes` queries per sweep.",
                             min=0, max=1000)
    nodelocal_address: str = f("", "NodeLocal DNSCache address (e.g. 169.254.20.10) for the "
                               "`nodelocal` path. Empty: detected, i.e. a link-local nameserver "
                               "(169.254.0.0/16) among `dns.nameservers` is taken to be NodeLocal "
                               "DNSCache; none otherwise.")


@dataclasses.dataclass(frozen=True)
class TcpSettings:
    enabled: bool = f(True, "TCP-probe ClusterIPs and ready endpoints.")
    timeout_seconds: float = f(2.0, "Connect timeout.", min=0.01, max=60)
    deny_cidrs: tuple[str, ...] = f(
        ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "::/128", "::1/128", "fe80::/10",
         "ff00::/8"),
        "Addresses never connected to (ClusterIPs and endpoints), IPv4-mapped IPv6 forms included. "
        "The default is what Kubernetes refuses in EndpointSlices (unspecified, loopback, link-local, "
        "link-local multicast), which can only come from a static file, a proxy or a broken API, "
        "widened to the whole of 0.0.0.0/8 and of multicast, which no TCP connect reaches. "
        "Add the node, metadata and infrastructure ranges of your network so that a Service cannot "
        "point the agents at them (see SECURITY.md). The agent's own pod IP and port are never probed.")
    allow_cidrs: tuple[str, ...] = f((), "When not empty, only addresses in these ranges are connected to "
                                     "(e.g. the cluster's Service and pod CIDRs).")
    node_ports: bool = f(True, "Probe each TCP nodePort of NodePort and LoadBalancer Services on this "
                         "node's address (`host_ip`), through kube-proxy's NodePort rules (`node_port`).")
    load_balancers: bool = f(True, "Probe the ingress IPs of LoadBalancer Services that kube-proxy answers "
                             "itself (ipMode VIP or unset) from inside the cluster (`load_balancer`).")
    max_endpoints_per_service: int = f(0, "Probe at most this many ready endpoint addresses per "
                                       "Service (0: all).", min=0)
    endpoint_interval_seconds: float = f(
        120.0, "Probe each endpoint this often (ClusterIPs and DNS every sweep): every application pod "
        "sees these connects in its logs. Each sweep takes its share, an endpoint never probed (new, "
        "or after a restart) at once, and its last result stands in between. Connects per endpoint "
        "port and minute: min(sharding.replicas, agents) x 60 / max(this, scheduler.interval_seconds); "
        "with the defaults 1.5, against 6 when every sweep probes them. 0: every sweep. `svcprobe "
        "check` probes every endpoint.", min=0.0)


@dataclasses.dataclass(frozen=True)
class LimitSettings:
    checks_per_service: int = f(500, "Most checks planned for one Service (its DNS checks first, then "
                                "TCP). A Service cut short is counted in svcprobe_plan_capped_services.",
                                min=10)
    ports_per_service: int = f(32, "Most ports of a Service, and of each of its EndpointSlices, that "
                               "are probed (SRV and TCP). The API allows 100 per slice.", min=1)
    checks_per_sweep: int = f(250000, "Most checks in one sweep; Services beyond it are left out and "
                              "counted. Keeps memory and planning time bounded whatever the cluster holds.",
                              min=100)
    answer_records: int = f(2000, "Most records an expected DNS answer may hold. A headless Service with "
                            "more ready addresses cannot be answered in one DNS message (64 KiB), so its "
                            "DNS checks are left out and counted.", min=10)


@dataclasses.dataclass(frozen=True)
class SchedulerSettings:
    interval_seconds: float = f(30.0, "Start a sweep over every planned check this often.", min=0.1)
    spread: float = f(0.8, "Fraction of the interval the checks of a sweep are spread over.",
                      min=0.0, max=1.0)
    jitter: float = f(0.1, "Random shift of each check's start, as a fraction of its slot.",
                      min=0.0, max=1.0)
    concurrency: int = f(64, "Most checks in flight at once.", min=1, max=10000)


@dataclasses.dataclass(frozen=True)
class MetricsSettings:
    series_budget: int = f(1000, "Approximate most series /metrics exports; per-Service failing "
                           "series beyond it are dropped and counted. The failing-Service gauge "
                           "always keeps at least half of it.", min=100)


@dataclasses.dataclass(frozen=True)
class ShutdownSettings:
    drain_seconds: float = f(5.0, "After SIGTERM, report not ready this long before stopping, "
                             "so the pod leaves its Service first.", min=0.0)
    timeout_seconds: float = f(20.0, "Hard limit for the whole shutdown (keep it below the pod's "
                               "terminationGracePeriodSeconds).", min=1.0)


@dataclasses.dataclass(frozen=True)
class Settings:
    listen: str = f("0.0.0.0:9142", "HTTP listen address, `HOST:PORT` (`[IPv6]:PORT`); `[::]:PORT` "
                    "listens on every IPv4 and IPv6 address (dual-stack clusters).")
    log_level: str = f("info", "Log level.", choices=LOG_LEVELS)
    log_format: str = f("text", "Log format: `text` or `json` (one object per line).",
                        choices=("text", "json"))
    node_name: str = f("", "This agent's node (the chart sets it from the downward API).")
    pod_name: str = f("", "This agent's pod name.")
    pod_namespace: str = f("", "This agent's namespace.")
    pod_ip: str = f("", "This agent's pod IP (identifies it among its peers).")
    host_ip: str = f("", "This agent's node address (the chart sets it from the downward API "
                     "`status.hostIP`): NodePorts are probed there. Empty: no NodePort checks.")
    inventory: InventorySettings = dataclasses.field(default_factory=InventorySettings)
    kubernetes: KubernetesSettings = dataclasses.field(default_factory=KubernetesSettings)
    selection: SelectionSettings = dataclasses.field(default_factory=SelectionSettings)
    sharding: ShardingSettings = dataclasses.field(default_factory=ShardingSettings)
    paths: PathSettings = dataclasses.field(default_factory=PathSettings)
    dns: DnsSettings = dataclasses.field(default_factory=DnsSettings)
    coredns: CorednsSettings = dataclasses.field(default_factory=CorednsSettings)
    tcp: TcpSettings = dataclasses.field(default_factory=TcpSettings)
    limits: LimitSettings = dataclasses.field(default_factory=LimitSettings)
    scheduler: SchedulerSettings = dataclasses.field(default_factory=SchedulerSettings)
    metrics: MetricsSettings = dataclasses.field(default_factory=MetricsSettings)
    shutdown: ShutdownSettings = dataclasses.field(default_factory=ShutdownSettings)
