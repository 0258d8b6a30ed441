"""Configuration: one tree of frozen dataclasses, each field documented.

Sources, lowest to highest precedence: built-in defaults, the pod's resolv.conf (for DNS
defaults only), the YAML file (`--config`), `SVCPROBE_*` environment variables, flags.
Every value is validated here; a bad one raises `ConfigError` naming the key.

The field metadata (`doc`) is the single source of the configuration reference
(docs/configuration.md is generated from it and checked by a test).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from agent import resolvconf

ENV_PREFIX = "SVCPROBE_"
FORMS = ("short", "namespace", "svc", "fqdn")
QTYPES = ("A", "AAAA")
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
    query_budget_per_second: float = f(100.0, "Most DNS queries per second this agent sends "
                                       "(token bucket over every path and form). With sharding an "
                                       "agent needs about (Services x replicas / agents + canaries) x "
                                       "20 queries per interval; when the budget is lower, sweeps take "
                                       "longer (svcprobe_sweep_lag_seconds).", min=0.1)
    query_budget_burst: int = f(100, "Token bucket size: queries that may go out at once.", min=1)
    grace_seconds: float = f(30.0, "After a Service or its endpoints change, a differing answer "
                             "counts as converging, not `wrong_answer`, for this long (TTL + caches).",
                             min=0)
    sockets: int = f(8, "UDP sockets per nameserver that queries are spread over; each is replaced "
                     "after 2,000 queries so queries to a Service IP keep taking fresh conntrack "
                     "5-tuples.", min=1, max=256)


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


@dataclasses.dataclass(frozen=True)
class SelectionSettings:
    namespaces: tuple[str, ...] = f((), "Probe only Services in these namespaces (empty: all). "
                                    "Canaries are always probed.")
    exclude_namespaces: tuple[str, ...] = f((), "Never probe Services in these namespaces.")
    label_selector: str = f("", "Probe only Services whose labels match (`key=value`, `key!=value`, "
                            "`key`, `!key`, comma-separated, all must hold).")
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
                        "directly, so one sick replica shows up by its address.")
    nodelocal_address: str = f("", "NodeLocal DNSCache address (e.g. 169.254.20.10) for the "
                               "`nodelocal` path. Empty: detected, i.e. a link-local nameserver "
                               "(169.254.0.0/16) among `dns.nameservers` is taken to be NodeLocal "
                               "DNSCache; none otherwise.")


@dataclasses.dataclass(frozen=True)
class TcpSettings:
    enabled: bool = f(True, "TCP-probe ClusterIPs and ready endpoints.")
    timeout_seconds: float = f(2.0, "Connect timeout.", min=0.01, max=60)
    max_endpoints_per_service: int = f(0, "Probe at most this many ready endpoint addresses per "
                                       "Service (0: all).", min=0)


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
                           "series beyond it are dropped and counted.", min=100)


@dataclasses.dataclass(frozen=True)
class ShutdownSettings:
    drain_seconds: float = f(5.0, "After SIGTERM, report not ready this long before stopping, "
                             "so the pod leaves its Service first.", min=0.0)
    timeout_seconds: float = f(20.0, "Hard limit for the whole shutdown (keep it below the pod's "
                               "terminationGracePeriodSeconds).", min=1.0)


@dataclasses.dataclass(frozen=True)
class Settings:
    listen: str = f("0.0.0.0:9142", "HTTP listen address, `HOST:PORT` (`[IPv6]:PORT`).")
    log_level: str = f("info", "Log level.", choices=LOG_LEVELS)
    log_format: str = f("text", "Log format: `text` or `json` (one object per line).",
                        choices=("text", "json"))
    node_name: str = f("", "This agent's node (the chart sets it from the downward API).")
    pod_name: str = f("", "This agent's pod name.")
    pod_namespace: str = f("", "This agent's namespace.")
    pod_ip: str = f("", "This agent's pod IP (identifies it among its peers).")
    inventory: InventorySettings = dataclasses.field(default_factory=InventorySettings)
    kubernetes: KubernetesSettings = dataclasses.field(default_factory=KubernetesSettings)
    selection: SelectionSettings = dataclasses.field(default_factory=SelectionSettings)
    sharding: ShardingSettings = dataclasses.field(default_factory=ShardingSettings)
    paths: PathSettings = dataclasses.field(default_factory=PathSettings)
    dns: DnsSettings = dataclasses.field(default_factory=DnsSettings)
    tcp: TcpSettings = dataclasses.field(default_factory=TcpSettings)
    scheduler: SchedulerSettings = dataclasses.field(default_factory=SchedulerSettings)
    metrics: MetricsSettings = dataclasses.field(default_factory=MetricsSettings)
    shutdown: ShutdownSettings = dataclasses.field(default_factory=ShutdownSettings)


# ---------------------------------------------------------------------------------------
# Schema walking: the dataclasses above are the schema.


@dataclasses.dataclass(frozen=True)
class Leaf:
    path: tuple[str, ...]
    type: Any
    default: Any
    meta: Mapping[str, Any]

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def env(self) -> str:
        return ENV_PREFIX + "_".join(self.path).upper()


def leaves(cls: type = Settings, prefix: tuple[str, ...] = ()) -> list[Leaf]:
    hints = typing.get_type_hints(cls)
    out: list[Leaf] = []
    for fld in dataclasses.fields(cls):
        tp = hints[fld.name]
        if dataclasses.is_dataclass(tp):
            out.extend(leaves(tp, prefix + (fld.name,)))
        else:
            out.append(Leaf(prefix + (fld.name,), tp, fld.default, fld.metadata))
    return out


def _coerce(leaf: Leaf, value: Any, *, from_text: bool) -> Any:
    """Check one value against its field; text (env, flags) is parsed first."""
    tp, key = leaf.type, leaf.key
    origin = typing.get_origin(tp)
    if origin is tuple or (isinstance(tp, types.GenericAlias) and tp.__origin__ is tuple):
        if from_text and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: must be a list of strings, not {value!r}")
        items = []
        for v in value:
            if not isinstance(v, str):
                raise ConfigError(f"{key}: every entry must be a string, not {v!r}")
            items.append(v)
        choices = leaf.meta.get("choices")
        if choices:
            for v in items:
                if v not in choices:
                    raise ConfigError(f"{key}: {v!r} is not one of {', '.join(choices)}")
            if not items:
                raise ConfigError(f"{key}: must name at least one of {', '.join(choices)}")
        return tuple(items)
    if tp is bool:
        if from_text and isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, not {value!r}")
        return value
    if tp in (int, float):
        if from_text and isinstance(value, str):
            try:
                value = tp(value.strip())
            except ValueError:
                raise ConfigError(f"{key}: {value!r} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: must be a number, not {value!r}")
        if tp is int and not isinstance(value, int):
            if not float(value).is_integer():
                raise ConfigError(f"{key}: must be a whole number, not {value!r}")
            value = int(value)
        value = tp(value)
        if not math.isfinite(value):  # NaN compares false with every bound
            raise ConfigError(f"{key}: {value} is not a finite number")
        lo, hi = leaf.meta.get("min"), leaf.meta.get("max")
        if lo is not None and value < lo:
            raise ConfigError(f"{key}: {value} is below the minimum {lo}")
        if hi is not None and value > hi:
            raise ConfigError(f"{key}: {value} is above the maximum {hi}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, not {value!r}")
        choices = leaf.meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
        return value
    raise TypeError(f"unsupported setting type {tp!r} for {key}")


def _flatten_file(data: Any, prefix: tuple[str, ...], known: dict[tuple[str, ...], Leaf],
                  sections: set[tuple[str, ...]], out: dict[tuple[str, ...], Any]) -> None:
    where = ".".join(prefix) or "(top level)"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a mapping, not {type(data).__name__}")
    for k, v in data.items():
        path = prefix + (str(k),)
        if path in known:
            out[path] = v
        elif path in sections:
            if v is not None:
                _flatten_file(v, path, known, sections, out)
        else:
            raise ConfigError(f"{'.'.join(path)}: unknown setting")


def _parse_hostport(text: str, key: str, *, default_port: int | None) -> tuple[str, int]:
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"{key}: {text!r} is not [IPv6]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not port_text:
        if default_port is None:
            raise ConfigError(f"{key}: {text!r} needs a port (HOST:PORT)")
        port = default_port
    else:
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(f"{key}: {port_text!r} is not a port number") from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"{key}: {port} is not a port number (0-65535)")
    return host, port


def parse_nameserver(text: str, key: str = "dns.nameservers") -> tuple[str, int]:
    host, port = _parse_hostport(text.strip(), key, default_port=53)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{key}: {host!r} is not an IP address (nameservers are given by address)") from None
    if port == 0:
        raise ConfigError(f"{key}: port 0 is not a nameserver port")
    return host, port


def parse_listen(text: str) -> tuple[str, int]:
    host, port = _parse_hostport(text, "listen", default_port=None)
    return host or "0.0.0.0", port


def _check_domain(value: str, key: str) -> str:
    value = value.strip().rstrip(".").lower()
    labels = value.split(".")
    if not value or any(not lab or len(lab) > 63 for lab in labels) or len(value) > 253:
        raise ConfigError(f"{key}: {value!r} is not a DNS domain")
    return value


def _build(cls: type, values: Mapping[tuple[str, ...], Any], prefix: tuple[str, ...] = ()) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for fld in dataclasses.fields(cls):
        path = prefix + (fld.name,)
        if dataclasses.is_dataclass(hints[fld.name]):
            kwargs[fld.name] = _build(hints[fld.name], values, path)
        elif path in values:
            kwargs[fld.name] = values[path]
    return cls(**kwargs)


def load(
    *,
    file_data: Any = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge every source and validate. `overrides` keys are dotted paths (from flags)."""
    all_leaves = leaves()
    known = {leaf.path: leaf for leaf in all_leaves}
    sections = {leaf.path[:i] for leaf in all_leaves for i in range(1, len(leaf.path))}
    values: dict[tuple[str, ...], Any] = {}
    explicit: set[tuple[str, ...]] = set()

    if file_data is not None:
        raw: dict[tuple[str, ...], Any] = {}
        _flatten_file(file_data, (), known, sections, raw)
        for path, v in raw.items():
            if v is None:
                continue  # an empty YAML value means "use the default"
            values[path] = _coerce(known[path], v, from_text=False)
            explicit.add(path)
    for leaf in all_leaves:
        if env and leaf.env in env:
            values[leaf.path] = _coerce(leaf, env[leaf.env], from_text=True)
            explicit.add(leaf.path)
    for dotted, v in (overrides or {}).items():
        path = tuple(dotted.split("."))
        if path not in known:
            raise ConfigError(f"{dotted}: unknown setting")
        values[path] = _coerce(known[path], v, from_text=isinstance(v, str))
        explicit.add(path)

    # DNS defaults from the pod's resolv.conf, only when no nameserver was configured.
    if ("dns", "nameservers") not in explicit:
        path = values.get(("dns", "resolv_conf"), known[("dns", "resolv_conf")].default)
        if path:
            try:
                rc = resolvconf.read(path)
            except OSError as exc:
                raise ConfigError(f"dns.resolv_conf: cannot read {path}: {exc.strerror}; "
                                  "configure dns.nameservers (or --nameserver)") from None
            if not rc.nameservers:
                raise ConfigError(f"dns.resolv_conf: {path} lists no nameserver; "
                                  "configure dns.nameservers (or --nameserver)")
            values[("dns", "nameservers")] = rc.nameservers
            if ("dns", "ndots") not in explicit:
                values[("dns", "ndots")] = rc.ndots
            if ("dns", "cluster_domain") not in explicit and rc.cluster_domain:
                values[("dns", "cluster_domain")] = rc.cluster_domain
            if ("dns", "search") not in explicit:
                values[("dns", "search")] = rc.host_search
        else:
            raise ConfigError("dns.nameservers: no nameserver configured and dns.resolv_conf is empty")

    # Cross-field and format checks.
    nameservers = values.get(("dns", "nameservers"), ())
    if not nameservers:
        raise ConfigError("dns.nameservers: at least one nameserver is needed")
    for ns in nameservers:
        parse_nameserver(ns)
    values[("dns", "cluster_domain")] = _check_domain(
        values.get(("dns", "cluster_domain"), "cluster.local"), "dns.cluster_domain")
    values[("dns", "search")] = tuple(
        _check_domain(s, "dns.search") for s in values.get(("dns", "search"), ()))
    parse_listen(values.get(("listen",), known[("listen",)].default))
    settings: Settings = _build(Settings, values)
    return settings


def nameserver_addresses(settings: Settings) -> list[tuple[str, int]]:
    return [parse_nameserver(ns) for ns in settings.dns.nameservers]


def reference_markdown() -> str:
    """The configuration reference (docs/configuration.md)."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `agent/settings.py` (`python -m agent config-reference`); a test keeps it",
        "in sync. Every key can be set in the YAML file given with `--config`, or overridden by",
        "the environment variable shown (lists as comma-separated text). Flags override both.",
        "",
        "| key | environment | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    for leaf in leaves():
        default = leaf.default
        if isinstance(default, tuple):
            default = "[" + ", ".join(default) + "]"
        elif isinstance(default, bool):
            default = str(default).lower()
        shown = f"`{default}`" if default != "" else '`""`'
        allowed = []
        if "choices" in leaf.meta:
            allowed.append(", ".join(f"`{c}`" for c in leaf.meta["choices"]))
        if "min" in leaf.meta:
            allowed.append(f"≥ {leaf.meta['min']:g}")
        if "max" in leaf.meta:
            allowed.append(f"≤ {leaf.meta['max']:g}")
        lines.append(f"| `{leaf.key}` | `{leaf.env}` | {shown} | {'; '.join(allowed)} | {leaf.meta['doc']} |")
    return "\n".join(lines) + "\n"
