"""Live Kubernetes discovery: list+watch of Services and EndpointSlices into the inventory.

The only package that imports the `kubernetes` client (for configuration and credentials);
objects are read as raw JSON into `agent.model` by `agent.inventory.parse`.
"""

from agent.discovery.client import ConnectionSpec, DiscoveryConfigError
from agent.discovery.source import KubeSource

__all__ = ["ConnectionSpec", "DiscoveryConfigError", "KubeSource"]
