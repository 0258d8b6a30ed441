"""Builders for unit tests: Kubernetes API dicts and agent model objects.

- ``svc_obj`` / ``slice_obj``: plain Kubernetes API dicts (what the API and kubectl print),
  for the parser and the static source.
- ``service`` / ``endpoint_slice`` / ``endpoint``: model objects, for the planner.
- ``plan_settings``: a PlanSettings with test defaults.
- ``KUBECTL_DUMP``: a hand-written, realistic `kubectl get svc,endpointslices -A -o yaml`.

Addresses are from the benchmark range 198.18.0.0/15 and fd00::/8; nothing here sends traffic.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from agent import model, planner

ZONE = "cluster.local"


# --------------------------------------------------------------------------- API dicts


def svc_obj(name: str = "web", namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    """A v1 Service as the API returns it; `spec` keys replace the defaults."""
    base_spec: dict[str, Any] = {
        "type": "ClusterIP",
        "clusterIP": "198.18.0.10",
        "clusterIPs": ["198.18.0.10"],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        "selector": {"app": name},
    }
    base_spec.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "uid": "u-" + name,
                     "resourceVersion": "100"},
        "spec": {k: v for k, v in base_spec.items() if v is not None},
    }


def slice_obj(name: str = "web-abc12", namespace: str = "shop", service: str | None = "web",
              address_type: str = "IPv4", endpoints: list[Any] | None = None,
              ports: list[Any] | None = None) -> dict[str, Any]:
    """A discovery.k8s.io/v1 EndpointSlice as the API returns it."""
    labels = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    if service is not None:
        labels["kubernetes.io/service-name"] = service
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "addressType": address_type,
        "endpoints": [{"addresses": ["198.18.1.1"], "conditions": {"ready": True}}]
        if endpoints is None else endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}] if ports is None else ports,
    }


def deep(obj: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(obj)


# --------------------------------------------------------------------------- model objects


def ips(*texts: str) -> tuple[model.IPAddress, ...]:
    return tuple(ipaddress.ip_address(t) for t in texts)


def service(name: str = "web", namespace: str = "shop", *, cluster_ips: tuple[str, ...] = ("198.18.0.10",),
            headless: bool = False, ports: tuple[tuple[str, str, int], ...] = (("http", "TCP", 80),),
            type: model.ServiceType = model.ServiceType.CLUSTER_IP, external_name: str = "",
            publish_not_ready: bool = False) -> model.Service:
    return model.Service(
        namespace=namespace,
        name=name,
        type=type,
        cluster_ips=() if headless or type is model.ServiceType.EXTERNAL_NAME else ips(*cluster_ips),
        headless=headless,
        ports=tuple(model.ServicePort(n, p, num) for n, p, num in ports),
        external_name=external_name,
        publish_not_ready=publish_not_ready,
    )


def endpoint(*addresses: str, ready: bool = True, serving: bool | None = None,
             terminating: bool = False, hostname: str = "") -> model.Endpoint:
    return model.Endpoint(addresses=ips(*addresses), ready=ready,
                          serving=ready if serving is None else serving,
                          terminating=terminating, hostname=hostname)


def endpoint_slice(name: str, *endpoints: model.Endpoint, service: str = "web", namespace: str = "shop",
                   address_type: str = "IPv4",
                   ports: tuple[tuple[str, str, int | None], ...] = (("http", "TCP", 8080),)) -> model.EndpointSlice:
    return model.EndpointSlice(
        namespace=namespace,
        name=name,
        service_name=service,
        address_type=address_type,
        endpoints=tuple(endpoints),
        ports=tuple(model.EndpointPort(n, p, num) for n, p, num in ports),
    )


def plan_settings(**kw: Any) -> planner.PlanSettings:
    base: dict[str, Any] = {
        "cluster_domain": ZONE,
        "ndots": 5,
        "host_search": (),
        "servers": (("127.0.0.53", 53),),
    }
    base.update(kw)
    return planner.PlanSettings(**base)


# --------------------------------------------------------------------------- a real-looking dump

# What `kubectl get svc,endpointslices -A -o yaml` prints for a small cluster: a v1 List with
# managedFields, status, last-applied annotations, ownerReferences and topology noise.
#   default/kubernetes       ClusterIP, one named port; slice with nil conditions.ready
#   kube-system/kube-dns     ClusterIP, dns/UDP + dns-tcp/TCP + metrics/TCP
#   shop/web                 dual-stack (IPv6 first in clusterIPs), named targetPort,
#                            two slices per family incl. a terminating endpoint
#   shop/db                  headless StatefulSet, hostnames, a not-ready pod, the same pod
#                            in two slices
#   shop/peers               headless, publishNotReadyAddresses
#   shop/legacy-api          ExternalName (trailing dot, mixed case)
#   shop/gateway             NodePort, single unnamed port, slice with no endpoints
#   shop/external            selector-less Service with an FQDN slice
#   shop/manual-ep           a slice without the kubernetes.io/service-name label
KUBECTL_DUMP = """\
apiVersion: v1
items:
- apiVersion: v1
  kind: Service
  metadata:
    creationTimestamp: "2024-05-01T10:00:00Z"
    labels:
      component: apiserver
      provider: kubernetes
    managedFields:
    - apiVersion: v1
      fieldsType: FieldsV1
      fieldsV1:
        f:metadata:
          f:labels:
            .: {}
            f:component: {}
        f:spec:
          f:clusterIP: {}
          f:ports:
            .: {}
            k:{"port":443,"protocol":"TCP"}:
              .: {}
              f:name: {}
      manager: kube-apiserver
      operation: Update
      time: "2024-05-01T10:00:00Z"
    name: kubernetes
    namespace: default
    resourceVersion: "197"
    uid: 7b0c8f0e-1d2a-4c55-9d7e-3a3c1f0f0001
  spec:
    clusterIP: 198.18.0.1
    clusterIPs:
    - 198.18.0.1
    internalTrafficPolicy: Cluster
    ipFamilies:
    - IPv4
    ipFamilyPolicy: SingleStack
    ports:
    - name: https
      port: 443
      protocol: TCP
      targetPort: 6443
    sessionAffinity: None
    type: ClusterIP
  status:
    loadBalancer: {}
- apiVersion: v1
  kind: Service
  metadata:
    annotations:
      prometheus.io/port: "9153"
      prometheus.io/scrape: "true"
    labels:
      k8s-app: kube-dns
      kubernetes.io/cluster-service: "true"
      kubernetes.io/name: CoreDNS
    name: kube-dns
    namespace: kube-system
    resourceVersion: "250"
    uid: 7b0c8f0e-1d2a-4c55-9d7e-3a3c1f0f0002
  spec:
    clusterIP: 198.18.0.10
    clusterIPs:
    - 198.18.0.10
    ipFamilies:
    - IPv4
    ipFamilyPolicy: SingleStack
    ports:
    - name: dns
      port: 53
      protocol: UDP
      targetPort: 53
    - name: dns-tcp
      port: 53
      protocol: TCP
      targetPort: 53
    - name: metrics
      port: 9153
      protocol: TCP
      targetPort: 9153
    selector:
      k8s-app: kube-dns
    sessionAffinity: None
    type: ClusterIP
  status:
    loadBalancer: {}
- apiVersion: v1
  kind: Service
  metadata:
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"web","namespace":"shop"},"spec":{"ipFamilyPolicy":"PreferDualStack","ports":[{"name":"http","port":80,"targetPort":"http"},{"name":"https","port":443,"targetPort":8443}],"selector":{"app":"web"}}}
    name: web
    namespace: shop
    resourceVersion: "4711"
    uid: 7b0c8f0e-1d2a-4c55-9d7e-3a3c1f0f0003
  spec:
    clusterIP: fd00:10:96::1234
    clusterIPs:
    - fd00:10:96::1234
    - 198.18.12.34
    internalTrafficPolicy: Cluster
    ipFamilies:
    - IPv6
    - IPv4
    ipFamilyPolicy: PreferDualStack
    ports:
    - name: http
      port: 80
      protocol: TCP
      targetPort: http
    - name: https
      port: 443
      protocol: TCP
      targetPort: 8443
    selector:
      app: web
    sessionAffinity: None
    type: ClusterIP
  status:
    loadBalancer: {}
- apiVersion: v1
  kind: Service
  metadata:
    labels:
      app: db
    name: db
    namespace: shop
    resourceVersion: "4800"
    uid: 7b0c8f0e-1d2a-4c55-9d7e-3a3c1f0f0004
  spec:
    clusterIP: None
    clusterIPs:
    - None
    ipFamilies:
    - IPv4
    ipFamilyPolicy: SingleStack
    ports:
    - name: postgres
      port: 5432
      protocol: TCP
      targetPort: pg
    selector:
      app: db
    type: ClusterIP
  status:
    loadBalancer: {}
- apiVersion: v1
  kind: Service
  metadata:
    name: peers
    namespace: shop
  spec:
    clusterIP: None
    clusterIPs:
    - None
    ports:
    - name: gossip
      port: 7946
      protocol: TCP
      targetPort: 7946
    publishNotReadyAddresses: true
    selector:
      app: peers
    type: ClusterIP
- apiVersion: v1
  kind: Service
  metadata:
    name: legacy-api
    namespace: shop
  spec:
    externalName: Api.Example.COM.
    sessionAffinity: None
    type: ExternalName
  status:
    loadBalancer: {}
- apiVersion: v1
  kind: Service
  metadata:
    name: gateway
    namespace: shop
  spec:
    clusterIP: 198.18.7.7
    clusterIPs:
    - 198.18.7.7
    externalTrafficPolicy: Cluster
    ports:
    - nodePort: 30080
      port: 80
      protocol: TCP
      targetPort: 8080
    selector:
      app: gateway
    type: NodePort
  status:
    loadBalancer: {}
- apiVersion: v1
  kind: Service
  metadata:
    name: external
    namespace: shop
  spec:
    clusterIP: 198.18.9.9
    clusterIPs:
    - 198.18.9.9
    ports:
    - name: https
      port: 443
      protocol: TCP
    type: ClusterIP
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 198.19.0.2
    conditions: {}
  kind: EndpointSlice
  metadata:
    generation: 1
    labels:
      endpointslice.kubernetes.io/skip-mirror: "true"
      kubernetes.io/service-name: kubernetes
    name: kubernetes
    namespace: default
    resourceVersion: "199"
  ports:
  - name: https
    port: 6443
    protocol: TCP
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 198.19.1.11
    conditions:
      ready: true
      serving: true
      terminating: false
    nodeName: node-a
    targetRef:
      kind: Pod
      name: coredns-5d78c9869d-abcde
      namespace: kube-system
      uid: 11111111-2222-3333-4444-555555555555
    zone: zone-a
  - addresses:
    - 198.19.2.12
    conditions:
      ready: true
      serving: true
      terminating: false
    nodeName: node-b
    targetRef:
      kind: Pod
      name: coredns-5d78c9869d-fghij
      namespace: kube-system
    zone: zone-b
  kind: EndpointSlice
  metadata:
    annotations:
      endpoints.kubernetes.io/last-change-trigger-time: "2024-05-01T10:01:00Z"
    generateName: kube-dns-
    labels:
      endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
      k8s-app: kube-dns
      kubernetes.io/service-name: kube-dns
    managedFields:
    - apiVersion: discovery.k8s.io/v1
      fieldsType: FieldsV1
      fieldsV1:
        f:addressType: {}
      manager: kube-controller-manager
      operation: Update
    name: kube-dns-x7k2p
    namespace: kube-system
    ownerReferences:
    - apiVersion: v1
      blockOwnerDeletion: true
      controller: true
      kind: Service
      name: kube-dns
      uid: 7b0c8f0e-1d2a-4c55-9d7e-3a3c1f0f0002
    resourceVersion: "260"
  ports:
  - name: dns-tcp
    port: 53
    protocol: TCP
  - name: dns
    port: 53
    protocol: UDP
  - name: metrics
    port: 9153
    protocol: TCP
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 198.19.1.21
    conditions:
      ready: true
      serving: true
      terminating: false
    nodeName: node-a
    hints:
      forZones:
      - name: zone-a
  - addresses:
    - 198.19.2.22
    conditions:
      ready: false
      serving: true
      terminating: true
    nodeName: node-b
  kind: EndpointSlice
  metadata:
    labels:
      endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
      kubernetes.io/service-name: web
    name: web-v4-aaaaa
    namespace: shop
  ports:
  - name: http
    port: 8080
    protocol: TCP
  - name: https
    port: 8443
    protocol: TCP
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 198.19.3.23
    conditions:
      ready: null
    nodeName: node-c
  kind: EndpointSlice
  metadata:
    labels:
      kubernetes.io/service-name: web
    name: web-v4-bbbbb
    namespace: shop
  ports:
  - name: http
    port: 8081
    protocol: TCP
  - name: https
    port: 8443
    protocol: TCP
- addressType: IPv6
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - fd00:10:244:1::21
    conditions:
      ready: true
  - addresses:
    - fd00:10:244:2::22
    conditions:
      ready: false
      serving: true
      terminating: true
  kind: EndpointSlice
  metadata:
    labels:
      kubernetes.io/service-name: web
    name: web-v6-ccccc
    namespace: shop
  ports:
  - name: http
    port: 8080
    protocol: TCP
  - name: https
    port: 8443
    protocol: TCP
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 198.19.1.30
    conditions:
      ready: true
    hostname: db-0
  - addresses:
    - 198.19.2.31
    conditions:
      ready: false
      serving: false
      terminating: false
    hostname: db-1
  kind: EndpointSlice
  metadata:
    labels:
      kubernetes.io/service-name: db
      service.kubernetes.io/headless: ""
    name: db-ddddd
    namespace: shop
  ports:
  - name: postgres
    port: 5433
    protocol: TCP
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 198.19.3.32
    conditions:
      ready: true
    hostname: db-2
  - addresses:
    - 198.19.1.30
    conditions:
      ready: true
    hostname: db-0
  kind: EndpointSlice
  metadata:
    labels:
      kubernetes.io/service-name: db
      service.kubernetes.io/headless: ""
    name: db-eeeee
    namespace: shop
  ports:
  - name: postgres
    port: 5433
    protocol: TCP
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 198.19.1.40
    conditions:
      ready: true
  - addresses:
    - 198.19.2.41
    conditions:
      ready: false
      serving: false
  kind: EndpointSlice
  metadata:
    labels:
      kubernetes.io/service-name: peers
    name: peers-fffff
    namespace: shop
  ports:
  - name: gossip
    port: 7946
    protocol: TCP
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints: null
  kind: EndpointSlice
  metadata:
    labels:
      kubernetes.io/service-name: gateway
    name: gateway-ggggg
    namespace: shop
  ports: null
- addressType: FQDN
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - backend.example.com
  kind: EndpointSlice
  metadata:
    labels:
      kubernetes.io/service-name: external
    name: external-1
    namespace: shop
  ports:
  - name: https
    port: 443
    protocol: TCP
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 198.19.5.50
  kind: EndpointSlice
  metadata:
    labels:
      endpointslice.kubernetes.io/managed-by: someone-else
    name: manual-ep
    namespace: shop
  ports:
  - name: http
    port: 80
    protocol: TCP
kind: List
metadata:
  resourceVersion: ""
"""
