"""svcprobe's Kubernetes test bed (see bed.py and docs/testbed.md)."""
from .bed import (  # noqa: F401
    Backend,
    CLUSTER_DOMAIN,
    KUBE_DNS_IP,
    KUBERNETES_IP,
    Node,
    TestBed,
    TestBedError,
    TestBedUnavailable,
    unavailable_reason,
)
