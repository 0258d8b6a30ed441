"""The DNS engine: emulated stub-resolver lookups over shared, connected UDP sockets.

`resolution` decides the walk (search list, retries, TCP fallback, outcomes) without I/O;
`transport` drives it from socket callbacks (pools, budget, timeouts, TCP); `wire` builds
queries and reads replies; `trace` formats what the debug view shows. Only this package
imports dnspython (the demo's test server aside).
"""

from agent.probes.dns.resolution import Resolution, Server, Status, server_label
from agent.probes.dns.transport import DnsEngine, Lookup

__all__ = ["DnsEngine", "Lookup", "Resolution", "Server", "Status", "server_label"]
