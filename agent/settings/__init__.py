"""Configuration: the schema, loading and validation, and the pod's resolv.conf.

`load()` merges every source and validates every value (a bad one raises `ConfigError`
naming the key); the rest of the agent reads the frozen `Settings` it returns.
"""

from agent.settings.load import (
    LINK_LOCAL,
    Leaf,
    ServiceRefs,
    label_selector,
    leaves,
    load,
    nameserver_addresses,
    nodelocal_address,
    parse_listen,
    parse_nameserver,
    reference_markdown,
    service_ref,
    service_refs,
)
from agent.settings.schema import (
    ENV_PREFIX,
    FORMS,
    LOG_LEVELS,
    QTYPES,
    ConfigError,
    DnsSettings,
    InventorySettings,
    KubernetesSettings,
    MetricsSettings,
    PathSettings,
    SchedulerSettings,
    SelectionSettings,
    Settings,
    ShardingSettings,
    ShutdownSettings,
    TcpSettings,
)

__all__ = [
    "ENV_PREFIX", "FORMS", "LINK_LOCAL", "LOG_LEVELS", "QTYPES", "ConfigError", "DnsSettings",
    "InventorySettings", "KubernetesSettings", "Leaf", "MetricsSettings", "PathSettings",
    "SchedulerSettings", "SelectionSettings", "ServiceRefs", "Settings", "ShardingSettings",
    "ShutdownSettings", "TcpSettings", "label_selector", "leaves", "load", "nameserver_addresses",
    "nodelocal_address", "parse_listen", "parse_nameserver", "reference_markdown", "service_ref",
    "service_refs",
]
