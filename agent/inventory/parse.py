"""Kubernetes objects (as plain dicts, the API's JSON) into the compact model.

The same functions serve the static file source and the live API discovery, so a
`kubectl get svc,endpointslices -A -o yaml` dump and a watch event are read identically.
Every problem names the object and the field at fault.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from agent import model

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Set by the EndpointSlice controller: when the Pod or Service change behind the slice's last
# update happened (RFC 3339 with fractional seconds).
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)", re.ASCII)


def rfc3339(text: str) -> float | None:
    """An RFC 3339 date-time as Unix time; None when `text` is not one."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, zone = m.group(7), m.group(8)
    try:
        if zone in ("Z", "z"):
            tz = datetime.UTC
        else:
            offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            tz = datetime.timezone(-offset if zone[0] == "-" else offset)
        t = datetime.datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:  # out of range: month 13, second 60, offset 24:00, ...
        return None
    return t.timestamp() + (float(fraction) if fraction else 0.0)


class ObjectError(ValueError):
    """A Kubernetes object that cannot be taken into the inventory."""

    def __init__(self, kind: str, ref: str, field: str, problem: str) -> None:
        self.kind, self.ref, self.field, self.problem = kind, ref, field, problem
        super().__init__(f"{kind} {ref}: {field}: {problem}")


class UnsupportedKind(ValueError):
    """An object of a kind the inventory does not use (skipped with a warning)."""


def _ref(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return "<unnamed>"
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or '<unnamed>'}"


class _Reader:
    """Field access that reports the path of whatever is wrong."""

    def __init__(self, kind: str, obj: Mapping[str, Any]) -> None:
        self.kind = kind
        self.ref = _ref(obj)

    def fail(self, field: str, problem: str) -> ObjectError:
        return ObjectError(self.kind, self.ref, field, problem)

    def mapping(self, value: Any, field: str, *, required: bool = False) -> Mapping[str, Any]:
        if value is None:
            if required:
                raise self.fail(field, "is required")
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(field, f"must be a mapping, not {type(value).__name__}")
        return value

    def seq(self, value: Any, field: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(field, f"must be a list, not {type(value).__name__}")
        return value

    def string(self, value: Any, field: str, *, default: str | None = None) -> str:
        if value is None:
            if default is None:
                raise self.fail(field, "is required")
            return default
        if not isinstance(value, str):
            raise self.fail(field, f"must be a string, not {type(value).__name__}")
        return value

    def boolean(self, value: Any, field: str, *, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(field, f"must be true or false, not {value!r}")
        return value

    def port(self, value: Any, field: str, *, optional: bool = False) -> int | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise self.fail(field, f"{value!r} is not a port number (1-65535)")
        return value

    def protocol(self, value: Any, field: str) -> str:
        proto = self.string(value, field, default="TCP")
        if proto not in _PROTOCOLS:
            raise self.fail(field, f"{proto!r} is not one of {', '.join(_PROTOCOLS)}")
        return proto

    def ip(self, value: Any, field: str, *, version: int | None = None) -> model.IPAddress:
        text = self.string(value, field)
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise self.fail(field, f"{text!r} is not an IP address") from None
        if version is not None and addr.version != version:
            raise self.fail(field, f"{text!r} is not an IPv{version} address")
        return addr

    def time(self, value: Any, field: str) -> float:
        """A recorded time as Unix time, 0.0 when absent or unreadable: it only tunes the
        grace window, so a bad one is warned about and never rejects the object."""
        if value is None:
            return 0.0
        if isinstance(value, datetime.datetime):  # unquoted in a YAML file
            # YAML reads a time without a zone as UTC.
            return (value if value.tzinfo else value.replace(tzinfo=datetime.UTC)).timestamp()
        t = rfc3339(value) if isinstance(value, str) else None
        if t is None:
            log.warning("%s %s: %s: %r is not an RFC 3339 time; taken as unknown",
                        self.kind, self.ref, field, str(value)[:60])
            return 0.0
        return t


def _metadata(r: _Reader, obj: Mapping[str, Any]) -> tuple[str, str, Mapping[str, Any]]:
    meta = r.mapping(obj.get("metadata"), "metadata", required=True)
    name = r.string(meta.get("name"), "metadata.name")
    namespace = r.string(meta.get("namespace"), "metadata.namespace", default="default")
    if not _DNS_LABEL.match(namespace):
        raise r.fail("metadata.namespace", f"{namespace!r} is not a DNS label")
    return namespace, name, meta


def _string_map(r: _Reader, value: Any, field: str) -> dict[str, str]:
    return _kept(r, value, field, _any_key)


def _any_key(key: str) -> bool:
    return True


# The agent reads only its own annotations (svcprobe.io/ignore, skip-dns, skip-tcp): the rest,
# up to 256 KiB per object, is not kept on every node.
ANNOTATION_PREFIX = "svcprobe.io/"


def _kept(r: _Reader, value: Any, field: str, keep: Callable[[str], bool]) -> dict[str, str]:
    """A string-to-string map (labels, annotations), as the API requires it; only the keys
    `keep` wants are kept, but every entry is checked."""
    m = r.mapping(value, field)
    out: dict[str, str] = {}
    for k, v in m.items():
        if not isinstance(k, str) or not isinstance(v, str):
            wrong = k if not isinstance(k, str) else v
            raise r.fail(f"{field}[{str(k)[:60]}]", f"keys and values must be strings, not {type(wrong).__name__}")
        if keep(k):
            out[k] = v
    return out


def _own_annotation(key: str) -> bool:
    return key.startswith(ANNOTATION_PREFIX)


def parse_service(obj: Mapping[str, Any], *, label_keys: frozenset[str] | None = None) -> model.Service:
    """A Service; `label_keys`: the only labels kept (those a label selector reads; None:
    all of them). Of the annotations only the agent's own are kept."""
    r = _Reader("Service", obj)
    namespace, name, meta = _metadata(r, obj)
    if not _DNS_LABEL.match(name):
        raise r.fail("metadata.name", f"{name!r} is not a DNS label (Service names must be)")
    spec = r.mapping(obj.get("spec"), "spec", required=True)
    type_text = r.string(spec.get("type"), "spec.type", default="ClusterIP")
    try:
        svc_type = model.ServiceType(type_text)
    except ValueError:
        allowed = ", ".join(t.value for t in model.ServiceType)
        raise r.fail("spec.type", f"{type_text!r} is not one of {allowed}") from None

    ports: list[model.ServicePort] = []
    for i, p in enumerate(r.seq(spec.get("ports"), "spec.ports")):
        f = f"spec.ports[{i}]"
        p = r.mapping(p, f)
        ports.append(
            model.ServicePort(
                name=r.string(p.get("name"), f"{f}.name", default=""),
                protocol=r.protocol(p.get("protocol"), f"{f}.protocol"),
                port=r.port(p.get("port"), f"{f}.port") or 0,
                node_port=r.port(p.get("nodePort"), f"{f}.nodePort", optional=True) or 0,
            )
        )
    names = [p.name for p in ports]
    if len(ports) > 1 and ("" in names or len(set(names)) != len(names)):
        raise r.fail("spec.ports", "ports must have unique, non-empty names when there are several")

    external_name = ""
    cluster_ips: list[model.IPAddress] = []
    headless = False
    if svc_type is model.ServiceType.EXTERNAL_NAME:
        external_name = r.string(spec.get("externalName"), "spec.externalName").rstrip(".").lower()
        if not _DNS_SUBDOMAIN.match(external_name):
            raise r.fail("spec.externalName", f"{external_name!r} is not a DNS name")
    else:
        raw_ips = r.seq(spec.get("clusterIPs"), "spec.clusterIPs")
        field = "spec.clusterIPs"
        if not raw_ips and spec.get("clusterIP") is not None:
            raw_ips, field = [spec.get("clusterIP")], "spec.clusterIP"
        if not raw_ips or raw_ips == [""]:
            raise r.fail(field, "no ClusterIP allocated (use 'None' for a headless Service)")
        if raw_ips[0] == "None":
            headless = True
        else:
            for i, ip in enumerate(raw_ips):
                cluster_ips.append(r.ip(ip, f"{field}[{i}]" if field.endswith("s") else field))
            if len({a.version for a in cluster_ips}) != len(cluster_ips):
                raise r.fail(field, "at most one address per IP family")

    return model.Service(
        namespace=namespace,
        name=name,
        type=svc_type,
        cluster_ips=tuple(cluster_ips),
        headless=headless,
        ports=tuple(ports),
        external_name=external_name,
        publish_not_ready=r.boolean(
            spec.get("publishNotReadyAddresses"), "spec.publishNotReadyAddresses", default=False
        ),
        internal_traffic_policy=_traffic_policy(r, spec.get("internalTrafficPolicy"), "spec.internalTrafficPolicy"),
        external_traffic_policy=_traffic_policy(r, spec.get("externalTrafficPolicy"), "spec.externalTrafficPolicy"),
        load_balancer_ips=_load_balancer_ips(r, obj.get("status")) if svc_type is model.ServiceType.LOAD_BALANCER
        else (),
        labels=_kept(r, meta.get("labels"), "metadata.labels",
                     _any_key if label_keys is None else label_keys.__contains__),
        annotations=_kept(r, meta.get("annotations"), "metadata.annotations", _own_annotation),
        created_at=r.time(meta.get("creationTimestamp"), "metadata.creationTimestamp"),
    )


def _load_balancer_ips(r: _Reader, status: Any) -> tuple[model.IPAddress, ...]:
    """The ingress IPs kube-proxy answers itself: ipMode VIP or unset (with Proxy the
    traffic goes out to the load balancer, which svcprobe does not probe). The status is a
    controller's, not the Service's spec: a bad one is warned about and gives no IP."""
    try:
        return _ingress_ips(r, status)
    except ObjectError as exc:
        log.warning("%s; its load-balancer IPs are not probed", exc)
        return ()


def _ingress_ips(r: _Reader, status: Any) -> tuple[model.IPAddress, ...]:
    if status is None:
        return ()
    lb = r.mapping(r.mapping(status, "status").get("loadBalancer"), "status.loadBalancer")
    out: list[model.IPAddress] = []
    for i, ing in enumerate(r.seq(lb.get("ingress"), "status.loadBalancer.ingress")):
        f = f"status.loadBalancer.ingress[{i}]"
        ing = r.mapping(ing, f)
        if ing.get("ip") is None or r.string(ing.get("ipMode"), f"{f}.ipMode", default="VIP") != "VIP":
            continue
        out.append(r.ip(ing.get("ip"), f"{f}.ip"))
    return tuple(out)


def _traffic_policy(r: _Reader, value: Any, field: str) -> str:
    policy = r.string(value, field, default="Cluster")
    if policy not in ("Cluster", "Local"):
        raise r.fail(field, f"{policy!r} is not Cluster or Local")
    return policy


def _pod_name(r: _Reader, value: Any, field: str) -> str:
    """The Pod an endpoint's targetRef names ("" for none or another kind). Findings name
    endpoints by it; the API keeps object names within 253 characters."""
    ref = r.mapping(value, field)
    if r.string(ref.get("kind"), f"{field}.kind", default="") != "Pod":
        return ""
    name = r.string(ref.get("name"), f"{field}.name", default="")
    if len(name) > 253:
        raise r.fail(f"{field}.name", f"has {len(name)} characters; object names have at most 253")
    return name


def parse_endpoint_slice(obj: Mapping[str, Any]) -> model.EndpointSlice:
    r = _Reader("EndpointSlice", obj)
    namespace, name, meta = _metadata(r, obj)
    labels = _string_map(r, meta.get("labels"), "metadata.labels")
    address_type = r.string(obj.get("addressType"), "addressType")
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        raise r.fail("addressType", f"{address_type!r} is not one of IPv4, IPv6, FQDN")
    version = {"IPv4": 4, "IPv6": 6}.get(address_type)

    endpoints: list[model.Endpoint] = []
    for i, ep in enumerate(r.seq(obj.get("endpoints"), "endpoints")):
        f = f"endpoints[{i}]"
        ep = r.mapping(ep, f)
        raw_addrs = r.seq(ep.get("addresses"), f"{f}.addresses")
        if not raw_addrs:
            raise r.fail(f"{f}.addresses", "must hold at least one address")
        if version is None:  # FQDN slices: kept for completeness, never probed
            addrs: tuple[model.IPAddress, ...] = ()
        else:
            addrs = tuple(
                r.ip(a, f"{f}.addresses[{j}]", version=version) for j, a in enumerate(raw_addrs)
            )
        cond = r.mapping(ep.get("conditions"), f"{f}.conditions")
        endpoints.append(
            model.Endpoint(
                addresses=addrs,
                ready=r.boolean(cond.get("ready"), f"{f}.conditions.ready", default=True),
                hostname=r.string(ep.get("hostname"), f"{f}.hostname", default=""),
                pod=_pod_name(r, ep.get("targetRef"), f"{f}.targetRef"),
                node=r.string(ep.get("nodeName"), f"{f}.nodeName", default=""),
            )
        )

    ports: list[model.EndpointPort] = []
    for i, p in enumerate(r.seq(obj.get("ports"), "ports")):
        f = f"ports[{i}]"
        p = r.mapping(p, f)
        ports.append(
            model.EndpointPort(
                name=r.string(p.get("name"), f"{f}.name", default=""),
                protocol=r.protocol(p.get("protocol"), f"{f}.protocol"),
                port=r.port(p.get("port"), f"{f}.port", optional=True),
            )
        )

    # Only the trigger time is read from the annotations, and only if they are a mapping: the
    # slice is usable without it.
    annotations = meta.get("annotations")
    trigger = annotations.get(TRIGGER_TIME_ANNOTATION) if isinstance(annotations, Mapping) else None
    return model.EndpointSlice(
        namespace=namespace,
        name=name,
        service_name=labels.get(SERVICE_NAME_LABEL, ""),
        address_type=address_type,
        endpoints=tuple(endpoints),
        ports=tuple(ports),
        created_at=r.time(meta.get("creationTimestamp"), "metadata.creationTimestamp"),
        trigger_time=r.time(trigger, f"metadata.annotations[{TRIGGER_TIME_ANNOTATION}]"),
    )


def parse_object(obj: Any, *, label_keys: frozenset[str] | None = None) -> model.Service | model.EndpointSlice:
    """One API object into the model; `UnsupportedKind` for kinds the inventory ignores."""
    if not isinstance(obj, Mapping):
        raise ObjectError("object", "<unnamed>", "(document)", f"must be a mapping, not {type(obj).__name__}")
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if kind == "Service" and api_version == "v1":
        return parse_service(obj, label_keys=label_keys)
    if kind == "EndpointSlice" and api_version == "discovery.k8s.io/v1":
        return parse_endpoint_slice(obj)
    raise UnsupportedKind(f"{api_version or '?'} {kind or '?'} {_ref(obj)}")
