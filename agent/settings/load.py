"""Loading settings: merge every source, validate every value, name the key at fault.

Sources, lowest to highest precedence: built-in defaults, the pod's resolv.conf (for DNS
defaults only), the YAML file (`--config`), `SVCPROBE_*` environment variables, flags.
Every value is validated here, cross-field rules and the text formats (addresses, label
selectors, `NAMESPACE/NAME` references) included; a bad one raises `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from agent.settings import resolvconf, selectors
from agent.settings.schema import ENV_PREFIX, ConfigError, Settings

# Schema walking: the dataclasses of agent.settings.schema are the schema.


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
            out.extend(leaves(typing.cast(type, tp), prefix + (fld.name,)))
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
    if ("dns", "search") in explicit:
        values[("dns", "search")] = tuple(
            _check_domain(s, "dns.search") for s in values.get(("dns", "search"), ()))
    # (Search domains read from resolv.conf are taken as the C libraries take them: one that no
    # query can carry is skipped or ends the walk there, as each library does, never refused.)
    parse_listen(values.get(("listen",), known[("listen",)].default))
    settings: Settings = _build(Settings, values)
    # The text formats read later (selector, references, NodeLocal address, CIDRs): fail now.
    tcp_networks(settings)
    label_selector(settings)
    service_refs(settings)
    nodelocal_address(settings)
    if settings.host_ip:
        try:
            ipaddress.ip_address(settings.host_ip)
        except ValueError:
            raise ConfigError(f"host_ip: {settings.host_ip!r} is not an IP address") from None
    return settings


def nameserver_addresses(settings: Settings) -> list[tuple[str, int]]:
    return [parse_nameserver(ns) for ns in settings.dns.nameservers]


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def tcp_networks(settings: Settings) -> tuple[tuple[IPNetwork, ...], tuple[IPNetwork, ...]]:
    """(denied, allowed) address ranges of TCP probes."""
    out: list[tuple[IPNetwork, ...]] = []
    for key, texts in (("tcp.deny_cidrs", settings.tcp.deny_cidrs), ("tcp.allow_cidrs", settings.tcp.allow_cidrs)):
        nets = []
        for text in texts:
            try:
                nets.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ConfigError(f"{key}: {text!r} is not an address range (CIDR)") from None
        out.append(tuple(nets))
    return out[0], out[1]


def label_selector(settings: Settings) -> tuple[selectors.Requirement, ...]:
    try:
        return selectors.parse_selector(settings.selection.label_selector)
    except selectors.SelectorError as exc:
        raise ConfigError(f"selection.label_selector: {exc}") from None


def service_ref(text: str, key: str) -> tuple[str, str]:
    try:
        return selectors.parse_ref(text, key)
    except selectors.SelectorError as exc:
        raise ConfigError(str(exc)) from None


@dataclasses.dataclass(frozen=True)
class ServiceRefs:
    """The Services the settings name, as (namespace, name)."""

    canaries: tuple[tuple[str, str], ...]
    services: tuple[tuple[str, str], ...]  # selection.services: only these (empty: any)
    dns_service: tuple[str, str] | None
    peers_service: tuple[str, str] | None


def service_refs(settings: Settings) -> ServiceRefs:
    s = settings
    peers = s.sharding.peers_service or (f"{s.pod_namespace}/svcprobe" if s.pod_namespace else "")
    return ServiceRefs(
        canaries=tuple(service_ref(c, "selection.canaries") for c in s.selection.canaries),
        services=tuple(service_ref(c, "selection.services") for c in s.selection.services),
        dns_service=service_ref(s.paths.dns_service, "paths.dns_service") if s.paths.dns_service else None,
        peers_service=service_ref(peers, "sharding.peers_service") if peers else None,
    )


LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")


def nodelocal_address(settings: Settings) -> tuple[str, int] | None:
    """The NodeLocal DNSCache address: configured, else detected, else None."""
    if settings.paths.nodelocal_address:
        return parse_nameserver(settings.paths.nodelocal_address, "paths.nodelocal_address")
    # Detected: NodeLocal DNSCache listens on a link-local address that the kubelet then
    # hands to pods as their nameserver (169.254.20.10 by convention).
    for ns in nameserver_addresses(settings):
        if ipaddress.ip_address(ns[0]) in LINK_LOCAL:
            return ns
    return None


def _plain_yaml(text: str) -> bool:
    return bool(text) and ":" not in text and text[0] not in "[]{}&*!|>'\"%@`#,?-"


def reference_markdown() -> str:
    """The configuration reference (docs/configuration.md)."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `agent/settings/schema.py` (`python -m agent config-reference`); a test keeps it",
        "in sync. Every key can be set in the YAML file given with `--config`, or overridden by",
        "the environment variable shown (lists as comma-separated text). Flags override both.",
        "",
        "| key | environment | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    for leaf in leaves():
        default = leaf.default
        if isinstance(default, tuple):  # as YAML flow, quoted where YAML needs it (IPv6 ranges)
            default = "[" + ", ".join(v if _plain_yaml(v) else f'"{v}"' for v in default) + "]"
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
