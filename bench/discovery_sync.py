#!/usr/bin/env python3
"""Kubernetes discovery at design scale: initial sync and steady-state watch.

    python -m bench.discovery_sync [--services 10000 --endpoints 100000] [--out FILE]   (normally run by bench/run)

The fake API server (`tests/support/kubeapi.py`, in this process, on 127.0.0.1) serves a synthetic
cluster: `--services` Services (ClusterIPs in 198.18.0.0/16) and their EndpointSlices holding
`--endpoints` endpoint addresses (198.19.0.0/16, reused round-robin past 65,534; they are only
data, never contacted). Objects carry what real ones do: labels, Helm annotations (or, on 30% of
the Services, kubectl's last-applied-configuration), managedFields, several ports, targetRefs,
node names and zones; endpoints per Service are skewed (mean 10, up to 50).

Each client runs in its own child process (pinned to CPU 1 when there are two; the server to
CPU 0), so its CPU time and peak RSS (`ru_maxrss`) are its own:

- `svcprobe`: `agent.discovery.KubeSource` (raw JSON into the compact model), publishing
  `model.Inventory` snapshots as it does in the agent.
- `typed`: the kubernetes client's typed-model path (`kubernetes.aio`): paginated
  `CoreV1Api.list_service_for_all_namespaces` and `DiscoveryV1Api.list_endpoint_slice_for_all_
  namespaces` into `V1Service`/`V1EndpointSlice` models kept in a dict (what an informer cache
  holds), then `kubernetes.aio.watch.Watch().stream(...)` on both.

Measured per client: initial sync wall and CPU seconds (from connect to "both resources listed"),
peak RSS after the sync, and the steady-state watch rate: `--events` MODIFIED events (half
Services, half EndpointSlices flipping one endpoint's readiness) queued at once by the server,
timed from "go" until the client has applied the last one (for svcprobe: visible in the published
inventory). Also the worst event-loop stall seen by a 10 ms ticker in the client (what the
agent's probe timings would suffer) and the longest garbage-collector pause. The table goes to
stdout, everything to `--out` as JSON.
Goal (issue 3): svcprobe peak RSS <= 150 MiB and initial sync <= 10 CPU-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "bench-token-not-a-secret"
MARKER_NS, MARKER = "zz-bench", "zz-marker"
_PATTERN = (2, 2, 3, 3, 4, 5, 6, 10, 15, 50)  # endpoints per Service, mean 10, x scale


def _rss_mib() -> float:
    """Peak RSS of this process: VmHWM (per address space, reset by exec), and never less than
    ru_maxrss. The children are started before the parent grows, so the ru_maxrss a child
    inherits across exec is the small parent's, below its own."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return max(peak, int(line.split()[1]) / 1024)
    except OSError:
        pass
    return peak


# ---------------------------------------------------------------------- synthetic cluster


def _uid(*parts: object) -> str:
    h = hashlib.md5(repr(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _managed_fields(manager: str, fields: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"manager": manager, "operation": "Update", "apiVersion": "v1",
             "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields}]


def build_cluster(n_services: int, n_endpoints: int) -> tuple[list[dict], list[dict]]:
    services: list[dict] = []
    slices: list[dict] = []
    n_ns = max(1, n_services // 100)
    scale = n_endpoints / max(1, n_services) / (sum(_PATTERN) / len(_PATTERN))
    counts = [max(1, round(_PATTERN[i % len(_PATTERN)] * scale)) for i in range(n_services)]
    counts[-1] = max(1, counts[-1] + n_endpoints - sum(counts))
    ep_index = 0
    for i in range(n_services):
        ns = f"ns-{i % n_ns:03d}"
        name = f"svc-{i:05d}"
        app = f"app-{i // 3:05d}"
        headless = i % 20 == 7
        nports = 1 + (i % 3 == 0) + (i % 9 == 0)
        ports = [("http", 80, 8080), ("metrics", 9090, 9090), ("grpc", 50051, 50051)][:nports]
        labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": f"rel-{i // 3}",
                  "app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": f"{app}-1.{i % 7}.0"}
        spec: dict[str, Any] = {
            "ports": [{"name": n, "protocol": "TCP", "port": p, "targetPort": t}
                      for n, p, t in ports],
            "selector": {"app.kubernetes.io/name": app},
            "type": "ClusterIP", "sessionAffinity": "None", "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
        }
        if headless:
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
        else:
            ip = f"198.18.{(i + 1) // 256}.{(i + 1) % 256}"
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        annotations = {"meta.helm.sh/release-name": f"rel-{i // 3}",
                       "meta.helm.sh/release-namespace": ns}
        if i % 10 < 3:  # 30% applied with kubectl: the whole object again, as an annotation
            annotations = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"annotations": {}, "labels": labels, "name": name,
                             "namespace": ns},
                "spec": {k: spec[k] for k in ("ports", "selector", "type")}}) + "\n"}
        services.append({
            "kind": "Service", "apiVersion": "v1",
            "metadata": {
                "name": name, "namespace": ns, "uid": _uid("svc", i),
                "creationTimestamp": "2026-01-01T00:00:00Z", "labels": labels,
                "annotations": annotations,
                "managedFields": _managed_fields("helm", {
                    "f:metadata": {"f:labels": {f"f:{k}": {} for k in labels}},
                    "f:spec": {"f:ports": {f'k:{{"port":{p},"protocol":"TCP"}}': {
                        ".": {}, "f:name": {}, "f:port": {}, "f:targetPort": {}}
                        for _, p, _ in ports}, "f:selector": {}, "f:type": {}}}),
            },
            "spec": spec, "status": {"loadBalancer": {}},
        })
        remaining, part = counts[i], 0
        while remaining > 0:
            take = min(100, remaining)
            remaining -= take
            eps = []
            for j in range(take):
                n = ep_index % 65534 + 1
                ep_index += 1
                eps.append({
                    "addresses": [f"198.19.{n // 256}.{n % 256}"],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "nodeName": f"node-{(i * 7 + j) % 5000:04d}",
                    "targetRef": {"kind": "Pod", "namespace": ns,
                                  "name": f"{app}-7d9f8c6b5-{j:05d}", "uid": _uid("pod", i, j)},
                    "zone": f"zone-{'abc'[j % 3]}",
                })
            slices.append({
                "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {
                    "name": f"{name}-{part:05x}", "namespace": ns, "uid": _uid("eps", i, part),
                    "generateName": f"{name}-", "creationTimestamp": "2026-01-01T00:00:00Z",
                    "labels": {"kubernetes.io/service-name": name,
                               "endpointslice.kubernetes.io/managed-by":
                                   "endpointslice-controller.k8s.io",
                               **({"service.kubernetes.io/headless": ""} if headless else {})},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                         "uid": _uid("svc", i), "controller": True,
                                         "blockOwnerDeletion": True}],
                },
                "addressType": "IPv4",
                "endpoints": eps,
                "ports": [{"name": n, "protocol": "TCP", "port": t} for n, _, t in ports],
            })
            part += 1
    return services, slices


# ---------------------------------------------------------------------- the measured children


def _emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


async def _stdin_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


class LoopLag:
    """The worst event-loop stall seen by a 10 ms ticker (what probe timings would suffer)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.worst_gc = 0.0
        self._gc_start = 0.0
        self.task = asyncio.create_task(self._tick())
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.worst_gc = max(self.worst_gc, time.perf_counter() - self._gc_start)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - t - 0.01)

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst

    def take_gc(self) -> float:
        worst, self.worst_gc = self.worst_gc, 0.0
        return worst


async def child_svcprobe(args: argparse.Namespace) -> None:
    from agent.discovery.kube import KubeSource
    from agent.health import Health

    _emit({"phase": "ready", "rss_mib": _rss_mib(), "import_cpu_s": time.process_time()})
    args.kubeconfig = (await _stdin_line()).strip()
    health = Health()
    lag = LoopLag()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    source = KubeSource(health, kubeconfig=args.kubeconfig, page_size=args.page_size)
    task = asyncio.create_task(source.run())
    if not await source.wait_synced(900):
        raise SystemExit(f"not synced: {source.last_error}")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    _emit({"phase": "synced", "wall_s": wall, "cpu_s": cpu, "rss_mib": _rss_mib(),
           "services": health.inventory_services, "endpoints": health.inventory_endpoints,
           "slices": len(source.inventory.slices), "max_loop_stall_s": lag.take(), "max_gc_pause_s": lag.take_gc()})

    await _stdin_line()
    if args.gc_freeze:
        gc.freeze()
    lag.take()
    lag.take_gc()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    publishes = 0
    while True:
        inv = source.inventory
        if (MARKER_NS, MARKER) in inv.services and (MARKER_NS, MARKER) in inv.slices:
            break
        source.changed.clear()
        await source.changed.wait()
        publishes += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    _emit({"phase": "done", "wall_s": wall, "cpu_s": cpu, "rss_mib": _rss_mib(),
           "publishes": publishes, "services": health.inventory_services,
           "max_loop_stall_s": lag.take(), "max_gc_pause_s": lag.take_gc()})
    task.cancel()


async def child_typed(args: argparse.Namespace) -> None:
    from kubernetes.aio import client as kclient, config as kconfig, watch as kwatch

    _emit({"phase": "ready", "rss_mib": _rss_mib(), "import_cpu_s": time.process_time()})
    args.kubeconfig = (await _stdin_line()).strip()
    lag = LoopLag()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    cfg = type.__call__(kclient.Configuration)
    await kconfig.load_kube_config(config_file=args.kubeconfig, client_configuration=cfg,
                                   persist_config=False)
    api = kclient.ApiClient(cfg)
    core, disc = kclient.CoreV1Api(api), kclient.DiscoveryV1Api(api)

    async def list_all(fn: Any) -> tuple[dict, str]:
        store: dict[tuple[str, str], Any] = {}
        cont = None
        while True:
            page = await fn(limit=args.page_size, _continue=cont)
            for item in page.items:
                store[(item.metadata.namespace, item.metadata.name)] = item
            cont = page.metadata._continue
            if not cont:
                return store, page.metadata.resource_version

    (svcs, svc_rv), (eps, eps_rv) = await asyncio.gather(
        list_all(core.list_service_for_all_namespaces),
        list_all(disc.list_endpoint_slice_for_all_namespaces))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n_eps = sum(len(s.endpoints or ()) for s in eps.values())
    _emit({"phase": "synced", "wall_s": wall, "cpu_s": cpu, "rss_mib": _rss_mib(),
           "services": len(svcs), "endpoints": n_eps, "slices": len(eps),
           "max_loop_stall_s": lag.take(), "max_gc_pause_s": lag.take_gc()})

    done = {"services": asyncio.Event(), "endpointslices": asyncio.Event()}

    async def watch(fn: Any, rv: str, store: dict, which: str) -> None:
        w = kwatch.Watch()
        async for ev in w.stream(fn, resource_version=rv, allow_watch_bookmarks=True,
                                 timeout_seconds=3600):
            obj = ev["object"]
            if ev["type"] == "BOOKMARK":
                continue
            key = (obj.metadata.namespace, obj.metadata.name)
            if ev["type"] == "DELETED":
                store.pop(key, None)
            else:
                store[key] = obj
            if key == (MARKER_NS, MARKER):
                done[which].set()

    tasks = [asyncio.create_task(watch(core.list_service_for_all_namespaces, svc_rv, svcs,
                                       "services")),
             asyncio.create_task(watch(disc.list_endpoint_slice_for_all_namespaces, eps_rv, eps,
                                       "endpointslices"))]
    await _stdin_line()
    lag.take()
    lag.take_gc()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await done["services"].wait()
    await done["endpointslices"].wait()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    _emit({"phase": "done", "wall_s": wall, "cpu_s": cpu, "rss_mib": _rss_mib(),
           "services": len(svcs), "max_loop_stall_s": lag.take(), "max_gc_pause_s": lag.take_gc()})
    for t in tasks:
        t.cancel()
    await api.close()


# ---------------------------------------------------------------------- the driver


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})


def _mutations(services: list[dict], slices: list[dict], n: int, seed: int
               ) -> list[tuple[str, dict]]:
    """n modifications, half Services (a label bump), half slices (one endpoint flips)."""
    rng = random.Random(seed)
    out: list[tuple[str, dict]] = []
    for k in range(n):
        if k % 2 == 0:
            svc = json.loads(json.dumps(rng.choice(services)))
            svc["metadata"]["labels"]["bench/rev"] = str(k)
            out.append(("services", svc))
        else:
            sl = json.loads(json.dumps(rng.choice(slices)))
            ep = rng.choice(sl["endpoints"])
            ready = not ep["conditions"]["ready"]
            ep["conditions"].update(ready=ready, serving=ready)
            out.append(("endpointslices", sl))
    return out


class Child:
    """A measured client process, started while this process is still small."""

    def __init__(self, mode: str, args: argparse.Namespace) -> None:
        self.mode, self.args = mode, args
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> dict[str, Any]:
        cmd = [sys.executable, __file__, "--child", self.mode,
               "--page-size", str(self.args.page_size)]
        if self.args.gc_freeze:
            cmd.append("--gc-freeze")
        self.proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            preexec_fn=(lambda: _pin(1)) if self.args.pin else None)
        return await self.read("ready")

    async def read(self, phase: str) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 900)
        if not line:
            status = await self.proc.wait()
            raise RuntimeError(f"{self.mode} child exited (status {status}) before {phase}")
        doc = json.loads(line)
        assert doc["phase"] == phase, doc
        return doc

    async def send(self, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
        if self.proc is not None:
            await self.proc.wait()


async def drive(child: Child, ready: dict[str, Any], api: Any, kubeconfig: str,
                mutations: list[tuple[str, dict]]) -> dict[str, Any]:
    from tests.support.kubeapi import endpoint_slice, service

    mode = child.mode
    try:
        await child.send(kubeconfig)
        synced = await child.read("synced")
        print(f"  {mode}: synced in {synced['wall_s']:.2f}s wall, {synced['cpu_s']:.2f}s CPU, "
              f"peak RSS {synced['rss_mib']:.0f} MiB", file=sys.stderr)
        for resource_name, obj in mutations:  # queued to the open watches at once
            api.put(resource_name, obj)
        api.put("services", service(MARKER_NS, MARKER, cluster_ip="198.18.255.254"))
        api.put("endpointslices", endpoint_slice(MARKER_NS, MARKER, MARKER, ["198.19.255.254"]))
        await child.send("go")
        done = await child.read("done")
        events = len(mutations) + 2
        print(f"  {mode}: {events} watch events in {done['wall_s']:.2f}s", file=sys.stderr)
    finally:
        await child.stop()
    # back to the listed state for the next client; forget the event history
    api.delete("services", MARKER_NS, MARKER, notify=False)
    api.delete("endpointslices", MARKER_NS, MARKER, notify=False)
    api.expire()
    return {
        "import_rss_mib": ready["rss_mib"], "import_cpu_s": ready["import_cpu_s"],
        "sync_wall_s": synced["wall_s"], "sync_cpu_s": synced["cpu_s"],
        "sync_peak_rss_mib": synced["rss_mib"], "services": synced["services"],
        "slices": synced["slices"], "endpoints": synced["endpoints"],
        "watch_events": events, "watch_wall_s": done["wall_s"], "watch_cpu_s": done["cpu_s"],
        "watch_events_per_s": events / done["wall_s"],
        "watch_events_per_cpu_s": events / max(done["cpu_s"], 1e-9),
        "peak_rss_mib": done["rss_mib"], "publishes": done.get("publishes"),
        "sync_max_loop_stall_ms": synced["max_loop_stall_s"] * 1000,
        "watch_max_loop_stall_ms": done["max_loop_stall_s"] * 1000,
        "sync_max_gc_pause_ms": synced["max_gc_pause_s"] * 1000,
        "watch_max_gc_pause_ms": done["max_gc_pause_s"] * 1000,
    }


def _table(results: dict[str, dict[str, Any]]) -> str:
    rows = [
        ("initial sync, wall s", "sync_wall_s", "{:.2f}", "typed/svcprobe"),
        ("initial sync, CPU s", "sync_cpu_s", "{:.2f}", "typed/svcprobe"),
        ("peak RSS after sync, MiB", "sync_peak_rss_mib", "{:.0f}", "typed/svcprobe"),
        ("peak RSS overall, MiB", "peak_rss_mib", "{:.0f}", "typed/svcprobe"),
        ("RSS after imports, MiB", "import_rss_mib", "{:.0f}", "typed/svcprobe"),
        ("watch events/s (wall)", "watch_events_per_s", "{:,.0f}", "svcprobe/typed"),
        ("watch events per CPU-s", "watch_events_per_cpu_s", "{:,.0f}", "svcprobe/typed"),
        ("worst loop stall, sync, ms", "sync_max_loop_stall_ms", "{:.0f}", "typed/svcprobe"),
        ("worst loop stall, watch, ms", "watch_max_loop_stall_ms", "{:.0f}", "typed/svcprobe"),
        ("worst GC pause, sync, ms", "sync_max_gc_pause_ms", "{:.0f}", "typed/svcprobe"),
        ("worst GC pause, watch, ms", "watch_max_gc_pause_ms", "{:.0f}", "typed/svcprobe"),
    ]
    s, t = results.get("svcprobe"), results.get("typed")
    out = [f"{'metric':<28} {'svcprobe':>12} {'k8s typed':>12} {'ratio':>8}  ratio is"]
    for label, key, fmt, sense in rows:
        sv = fmt.format(s[key]) if s else "-"
        tv = fmt.format(t[key]) if t else "-"
        ratio = "-"
        if s and t and s[key] and t[key]:
            r = t[key] / s[key] if sense == "typed/svcprobe" else s[key] / t[key]
            ratio = f"{r:.1f}x"
        out.append(f"{label:<28} {sv:>12} {tv:>12} {ratio:>8}  {sense}")
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> int:
    from tests.support.kubeapi import FakeKubeAPI

    if args.pin:
        _pin(0)
    children = [Child(mode, args) for mode in args.clients]
    readies = []
    try:
        for child in children:
            readies.append(await child.start())
    except BaseException:
        for child in children:
            await child.stop()
        raise
    t0 = time.perf_counter()
    services, slices = build_cluster(args.services, args.endpoints)
    mutations = _mutations(services, slices, args.events, seed=3)
    n_eps = sum(len(s["endpoints"]) for s in slices)
    print(f"synthetic cluster: {len(services)} Services, {len(slices)} EndpointSlices, "
          f"{n_eps} endpoints (built in {time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    results: dict[str, Any] = {}
    async with FakeKubeAPI(token=TOKEN) as api:
        api.put_many("services", services)
        api.put_many("endpointslices", slices)
        del services, slices
        with tempfile.TemporaryDirectory(prefix="svcprobe-bench-") as tmp:
            kubeconfig = os.path.join(tmp, "kubeconfig")
            Path(kubeconfig).write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config", "current-context": "bench",
                "clusters": [{"name": "bench", "cluster": {"server": api.url}}],
                "users": [{"name": "bench", "user": {"token": TOKEN}}],
                "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
            }))
            try:
                for child, ready in zip(children, readies, strict=True):
                    print(f"running {child.mode} ...", file=sys.stderr)
                    results[child.mode] = await drive(child, ready, api, kubeconfig, mutations)
            finally:
                for child in children:
                    await child.stop()
    s = results.get("svcprobe")
    doc = {
        "benchmark": "discovery_sync",
        "params": {"services": args.services, "endpoints": args.endpoints,
                   "page_size": args.page_size, "events": args.events, "pinned": args.pin,
                   "gc_freeze": args.gc_freeze,
                   "cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "results": results,
        "goals": None if not s else {
            "peak_rss_mib<=150": s["peak_rss_mib"] <= 150,
            "sync_cpu_s<=10": s["sync_cpu_s"] <= 10,
        },
    }
    if s and "typed" in results:
        t = results["typed"]
        doc["ratios"] = {
            "sync_cpu_typed_over_svcprobe": t["sync_cpu_s"] / s["sync_cpu_s"],
            "sync_wall_typed_over_svcprobe": t["sync_wall_s"] / s["sync_wall_s"],
            "peak_rss_typed_over_svcprobe": t["peak_rss_mib"] / s["peak_rss_mib"],
            "watch_rate_svcprobe_over_typed": s["watch_events_per_s"] / t["watch_events_per_s"],
        }
    print()
    print(f"Discovery: {args.services} Services, {args.endpoints} endpoints, "
          f"page size {args.page_size}, {args.events} watch events")
    print(_table(results))
    if doc["goals"]:
        print("goals: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}"
                                    for k, v in doc["goals"].items()))
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--endpoints", type=int, default=100_000)
    p.add_argument("--page-size", type=int, default=500)
    p.add_argument("--events", type=int, default=20_000,
                   help="steady-state watch events (half Services, half EndpointSlices)")
    p.add_argument("--clients", nargs="+", default=["svcprobe", "typed"],
                   choices=["svcprobe", "typed"])
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="do not pin the server to CPU 0 and the client to CPU 1")
    p.add_argument("--gc-freeze", action="store_true",
                   help="svcprobe client: gc.freeze() after the initial sync (as the agent "
                        "could), to see its effect on GC pauses")
    p.add_argument("--out", default="", help="write the results as JSON to this file")
    p.add_argument("--child", choices=["svcprobe", "typed"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        asyncio.run(child_svcprobe(args) if args.child == "svcprobe" else child_typed(args))
        return 0
    if args.services < 1 or args.endpoints < 1 or args.events < 0:
        p.error("--services and --endpoints must be >= 1, --events >= 0")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
