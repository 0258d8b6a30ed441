"""Helpers shared by the test tiers and the benchmarks, imported as ``tests.support.<module>``.

- ``builders``: Kubernetes API dicts and agent model objects for unit tests, and the
  ``kubectl get svc,endpointslices -A -o yaml`` dump in ``data/``.
- ``kubeapi``: a fake Kubernetes API server (list/watch, faults) on loopback.
- ``knot``: a real authoritative DNS server, a private ``knotd`` on loopback.
- ``libc``: the real glibc and musl ``getaddrinfo`` (``gai_client.c``, built into the cache)
  with a resolv.conf the test chooses, in a private mount namespace (root).
- ``forwarder``: a recording, dropping DNS forwarder on loopback port 53 (the libc tests).
- ``listeners``: loopback listeners whose connects time out (a full accept queue).
- ``chart``: rendering the Helm chart, the metric contract of docs/metrics.md, and where PromQL
  lives (rules, dashboard).

``tests`` itself is a namespace package: run from the repository root (pytest's
``pythonpath = ["."]``, ``bench/run``, ``python -m ...``), these import without any
``sys.path`` set-up.
"""
