"""`helm install` of the chart into the test bed's kube-apiserver, then the release's
ServiceAccount put to work with a TokenRequest token: `kubectl auth can-i` says it may get, list
and watch Services and discovery.k8s.io EndpointSlices and nothing else, and the agent's own
list+watch (agent.discovery.KubeSource, configured from the release's ConfigMap and DaemonSet
environment) syncs with that token and follows changes, reaching the API the way a DaemonSet pod
does: the `kubernetes` Service IP through the node's kube-proxy, token and CA read from files.

What the bed does not have: a kubelet and a kube-controller-manager. The DaemonSet is stored
but never gets pods, so no agent container runs, the headless Service gets no EndpointSlices and
`helm test` cannot run (it needs a running pod). That is expected here. What is checked is what
the API server itself decides: it accepts the chart's manifests, and the RBAC they create grants
what the agent needs and no more.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.bed import BIN, KUBERNETES_IP, TestBed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart"
NODE = "node1"
DEADLINE = 60.0  # seconds the child waits for a sync or a change; only bounds a hang

# The agent side, run by the interpreter running these tests inside the node's namespace.
CHILD = r'''
import asyncio, json, sys, time
import yaml
from agent import runner, settings
from agent.targeting import assignment
from agent.discovery.client import ConnectionSpec
from agent.discovery.kube import KubeSource
from agent.health import Health

mode, token, ca, config_path, env_path, watch_ns, watch_name, deadline = sys.argv[1:9]
deadline = float(deadline)

def emit(**kw):
    print(json.dumps(kw), flush=True)

async def main():
    s = settings.load(file_data=yaml.safe_load(open(config_path)), env=json.load(open(env_path)),
                      overrides={"dns.nameservers": ("127.0.0.1",)})
    ts = assignment.settings_from(s)
    health = Health()
    # In-cluster credentials, as in the pod: token and CA files, the kubernetes Service address.
    spec = ConnectionSpec(token_path=token, ca_path=ca, environ={
        "KUBERNETES_SERVICE_HOST": "@KUBERNETES_IP@", "KUBERNETES_SERVICE_PORT": "443"})
    source = KubeSource.from_settings(s.kubernetes, health, connection=spec)
    await source.connect()
    task = asyncio.create_task(source.run())
    end = time.monotonic() + deadline

    def state(**extra):
        return dict(synced=source.synced, last_error=source.last_error, server=source.server,
                    restarts={f"{r}/{why}": n for (r, why), n in health.watch_restarts.items()},
                    relists=dict(health.relists), kube_synced=health.kube_synced, **extra)

    if mode == "denied":
        while not source.last_error and not source.synced and time.monotonic() < end:
            await asyncio.sleep(0.1)
        emit(event="denied", **state())
    else:
        await source.wait_synced(deadline)
        inv = source.inventory
        emit(event="synced", services=sorted("/".join(k) for k in inv.services),
             peers_service="/".join(ts.peers_service or ()), me=ts.me, **state())
        if source.synced:
            key, addrs = (watch_ns, watch_name), []
            end = time.monotonic() + deadline
            while time.monotonic() < end:
                svc = source.inventory.services.get(key)
                if svc is not None:
                    addrs = sorted(str(e.address) for e in source.inventory.ready_endpoints(svc))
                    if addrs:
                        break
                await asyncio.sleep(0.1)
            emit(event="watched", endpoints=addrs, **state())
    task.cancel()
    try:
        await task
    except BaseException:
        pass
    await source.close()

asyncio.run(main())
'''.replace("@KUBERNETES_IP@", KUBERNETES_IP)

CAN_I_ROW = re.compile(r"^(\S*)\s+(\[[^\]]*\])\s+(\[[^\]]*\])\s+(\[[^\]]*\])$")


@dataclass
class Release:
    bed: TestBed
    name: str
    ns: str
    workdir: Path
    helm_env: list[str]

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cp = self.bed.node_exec(NODE, ["env", *self.helm_env, str(BIN / "helm"), *args,
                                       f"--kubeconfig={self.bed.admin_kubeconfig}"], timeout=180)
        if check:
            assert cp.returncode == 0, f"helm {' '.join(args)}: {cp.stderr}\n{cp.stdout}"
        return cp

    def get(self, kind: str, name: str, namespaced: bool = True) -> dict[str, Any]:
        args = ["-n", self.ns] if namespaced else []
        return self.bed.get_json(kind, name, *args)

    @property
    def fullname(self) -> str:
        return f"{self.name}-svcprobe"

    def token(self, service_account: str) -> Path:
        token = self.bed.kubectl("create", "token", "-n", self.ns, service_account,
                                 "--duration=1h").stdout.strip()
        path = self.workdir / f"{service_account}.token"
        path.write_text(token)
        return path

    def kubeconfig(self, service_account: str) -> Path:
        return self.bed.write_kubeconfig(self.workdir / f"{service_account}.kubeconfig",
                                         token=self.token(service_account).read_text())

    def can_i(self, kubeconfig: Path, *args: str) -> bool:
        cp = self.bed.node_exec(NODE, [str(BIN / "kubectl"), f"--kubeconfig={kubeconfig}",
                                       "auth", "can-i", *args])
        answer = cp.stdout.strip()
        assert answer in ("yes", "no"), f"can-i {args}: {cp.returncode} {cp.stdout} {cp.stderr}"
        assert (cp.returncode == 0) == (answer == "yes")
        return answer == "yes"

    def rules(self, kubeconfig: Path, namespace: str) -> set[tuple[str, ...]]:
        """`kubectl auth can-i --list`: (resource, non-resource URLs, names, verbs) rows."""
        cp = self.bed.node_exec(NODE, [str(BIN / "kubectl"), f"--kubeconfig={kubeconfig}",
                                       "auth", "can-i", "--list", "-n", namespace, "--no-headers"],
                                check=True)
        rows = set()
        for line in cp.stdout.splitlines():
            if not line.strip():
                continue
            # A non-resource row has an empty first column.
            m = CAN_I_ROW.match(("-" + line) if line[0].isspace() else line)
            assert m, f"unexpected can-i --list row {line!r}"
            rows.add(m.groups())
        return rows


@pytest.fixture(scope="module")
def release(bed: TestBed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    if not os.access(BIN / "helm", os.X_OK):  # an error, not a skip, as for the bed's binaries
        pytest.fail(f"{BIN / 'helm'} missing: run scripts/install-test-deps (deps.d/40-monitoring.sh)")
    workdir = tmp_path_factory.mktemp("helm")
    suffix = os.getpid() % 100000
    ns = f"helm-{suffix}"
    bed.ensure_namespace(ns)
    helm_env = [f"HELM_{d}_HOME={workdir / d.lower()}" for d in ("CACHE", "CONFIG", "DATA")]
    rel = Release(bed, f"e2e{suffix}", ns, workdir, helm_env)
    rel.helm("install", rel.name, str(CHART), "--namespace", ns)
    try:
        yield rel
    finally:
        rel.helm("uninstall", rel.name, "--namespace", ns, check=False)


def pod_env(ds: dict[str, Any], ns: str, pod_ip: str, host_ip: str) -> dict[str, str]:
    """The agent container's environment as the kubelet would resolve it for one pod."""
    field = {"spec.nodeName": NODE, "metadata.name": f"{ds['metadata']['name']}-abcde",
             "metadata.namespace": ns, "status.podIP": pod_ip, "status.hostIP": host_ip}
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] if "value" in e else field[e["valueFrom"]["fieldRef"]["fieldPath"]]
            for e in c["env"]}


def run_agent_child(rel: Release, mode: str, service_account: str,
                    watch: tuple[str, str] = ("", "")) -> subprocess.Popen:
    ds = rel.get("daemonset", rel.fullname)
    cm = rel.get("configmap", rel.fullname)
    (rel.workdir / "config.yaml").write_text(cm["data"]["config.yaml"])
    (rel.workdir / "env.json").write_text(json.dumps(pod_env(ds, rel.ns, "198.19.1.250", rel.bed.node(NODE).ip)))
    script = rel.workdir / "child.py"
    script.write_text(CHILD)
    argv = ["env", f"PYTHONPATH={ROOT}", sys.executable, str(script), mode,
            str(rel.token(service_account)), str(rel.bed.pki / "ca.crt"),
            str(rel.workdir / "config.yaml"), str(rel.workdir / "env.json"), *watch, str(DEADLINE)]
    with (rel.workdir / f"child-{mode}.log").open("w") as log:
        return rel.bed.node_popen(NODE, argv, stdout=subprocess.PIPE, stderr=log, text=True)


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


def read_event(rel: Release, proc: subprocess.Popen, event: str) -> dict[str, Any]:
    """The child's next JSON line (it prints one within its own deadline, or exits)."""
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        log = "\n".join((rel.workdir / f"child-{m}.log").read_text()[-3000:]
                        for m in ("watch", "denied") if (rel.workdir / f"child-{m}.log").exists())
        pytest.fail(f"agent child exited {proc.returncode} before {event!r}:\n{log}")
    got = json.loads(line)
    assert got["event"] == event, got
    return got


# --- The release -------------------------------------------------------------------------------

def test_helm_install_is_accepted_by_the_api_server(release: Release) -> None:
    status = json.loads(release.helm("status", release.name, "--namespace", release.ns,
                                     "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    ds = release.get("daemonset", release.fullname)
    svc = release.get("service", release.fullname)
    sa = release.get("serviceaccount", release.fullname)
    role = release.get("clusterrole", release.fullname, namespaced=False)
    binding = release.get("clusterrolebinding", release.fullname, namespaced=False)
    assert svc["spec"]["clusterIP"] == "None"
    assert not svc["spec"].get("publishNotReadyAddresses")  # false is omitted by the API
    assert ds["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": release.ns}]
    env = pod_env(ds, release.ns, "198.19.1.250", release.bed.node(NODE).ip)
    assert env["SVCPROBE_SHARDING_PEERS_SERVICE"] == f"{release.ns}/{svc['metadata']['name']}"
    # No controller here: the DaemonSet is stored, never scheduled.
    assert not ds.get("status", {}).get("currentNumberScheduled")


# --- RBAC: exactly what the agent needs -------------------------------------------------------

@pytest.mark.parametrize("verb", ["get", "list", "watch"])
@pytest.mark.parametrize("resource", ["services", "endpointslices.discovery.k8s.io"])
def test_service_account_may_read_services_and_endpointslices(release: Release, verb: str,
                                                              resource: str) -> None:
    kc = release.kubeconfig(release.fullname)
    assert release.can_i(kc, verb, resource, "--all-namespaces")
    assert release.can_i(kc, verb, resource, "-n", "kube-system")


@pytest.mark.parametrize("args", [
    ("get", "secrets", "-n", "kube-system"),
    ("list", "secrets", "--all-namespaces"),
    ("list", "pods", "--all-namespaces"),
    ("get", "pods", "-n", "{ns}"),
    ("list", "configmaps", "-n", "{ns}"),
    ("get", "configmaps", "--all-namespaces"),
    ("list", "nodes"),
    ("get", "nodes"),
    ("list", "endpoints", "--all-namespaces"),
    ("create", "services", "-n", "{ns}"),
    ("delete", "services", "-n", "{ns}"),
    ("update", "services", "-n", "{ns}"),
    ("patch", "services", "--all-namespaces"),
    ("create", "endpointslices.discovery.k8s.io", "-n", "{ns}"),
    ("delete", "endpointslices.discovery.k8s.io", "--all-namespaces"),
    ("create", "serviceaccounts", "--subresource=token", "-n", "{ns}"),
    ("list", "clusterroles"),
    ("impersonate", "serviceaccounts", "--all-namespaces"),
    ("get", "services", "--subresource=proxy", "-n", "kube-system"),
    ("update", "services", "--subresource=status", "-n", "{ns}"),
], ids=lambda a: " ".join(a).replace("{ns}", "NS"))
def test_service_account_is_denied_anything_else(release: Release, args: tuple[str, ...]) -> None:
    kc = release.kubeconfig(release.fullname)
    assert not release.can_i(kc, *(a.replace("{ns}", release.ns) for a in args))


def test_nothing_granted_beyond_services_and_endpointslices(release: Release) -> None:
    """The whole rule list, compared with a ServiceAccount that has no binding at all (every
    authenticated user gets discovery and self-review rules): the difference is exactly the two
    read-only rules."""
    release.bed.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "nobody", "namespace": release.ns}})
    granted = release.kubeconfig(release.fullname)
    baseline = release.kubeconfig("nobody")
    for namespace in (release.ns, "kube-system"):
        extra = release.rules(granted, namespace) - release.rules(baseline, namespace)
        assert extra == {("services", "[]", "[]", "[get list watch]"),
                         ("endpointslices.discovery.k8s.io", "[]", "[]", "[get list watch]")}


# --- The agent's list+watch with the release's token -------------------------------------------

def test_agent_lists_and_watches_with_the_release_token(release: Release) -> None:
    bed = release.bed
    proc = run_agent_child(release, "watch", release.fullname, watch=(release.ns, "late"))
    try:
        synced = read_event(release, proc, "synced")
        assert synced["synced"] is True, synced
        assert synced["kube_synced"] is True and synced["last_error"] == ""
        assert synced["server"] == f"https://{KUBERNETES_IP}:443"
        assert {"default/kubernetes", "kube-system/kube-dns",
                f"{release.ns}/{release.fullname}"} <= set(synced["services"])
        # The identity the chart gives the agent points at the release's own Service.
        assert synced["peers_service"] == f"{release.ns}/{release.fullname}"
        assert synced["me"] == "198.19.1.250"

        # A Service made after the sync reaches the agent through its watch (no relist).
        bed.create_service(release.ns, "late", ports=[("http", 80, "TCP")])
        bed.set_endpoints(release.ns, "late", [{"ip": "198.19.1.251"}], ports=[("http", 8080, "TCP")])
        watched = read_event(release, proc, "watched")
        assert watched["endpoints"] == ["198.19.1.251"], watched
        assert watched["relists"] == synced["relists"]
        assert not [r for r in watched["restarts"] if not r.endswith("/closed")], watched["restarts"]
    finally:
        stop(proc)
        bed.delete_service(release.ns, "late")


def test_without_the_binding_the_same_agent_is_forbidden(release: Release) -> None:
    """The control for the test above: the same child with a ServiceAccount the chart did not
    bind gets 403, so a sync there is the ClusterRoleBinding's doing."""
    release.bed.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "nobody", "namespace": release.ns}})
    proc = run_agent_child(release, "denied", "nobody")
    try:
        denied = read_event(release, proc, "denied")
    finally:
        stop(proc)
    assert denied["synced"] is False
    assert "403" in denied["last_error"], denied
    assert any(r.endswith("/forbidden") for r in denied["restarts"]), denied



# --- the kubectl plugin against the real API server --------------------------------------------

def test_kubectl_plugin_pod_is_accepted_then_cleaned_up(release: Release, tmp_path: Path) -> None:
    """`kubectl svcprobe check` with the real kubectl and kube-apiserver: the API accepts the
    one-off pod it makes from the installed DaemonSet (server-side validation and defaulting).
    With no kubelet here it never starts: the plugin says so, deletes it and exits 2."""
    plugin = ROOT / "plugin" / "kubectl-svcprobe"
    cp = release.bed.node_exec(NODE, [
        sys.executable, str(plugin), f"--kubectl={BIN / 'kubectl'}", f"--kubeconfig={release.bed.admin_kubeconfig}",
        "--svcprobe-namespace", release.ns, "--node", NODE, "--timeout", "6", "check", "-n", "default"], timeout=90)
    assert cp.returncode == 2, cp.stderr
    assert f"kubectl svcprobe: pod {release.ns}/{release.fullname}-check-" in cp.stderr
    assert "did not start within 6s" in cp.stderr
    left = json.loads(release.bed.kubectl("get", "pods", "-n", release.ns, "-o", "json").stdout)["items"]
    gone = [p for p in left if p["metadata"]["name"].startswith(f"{release.fullname}-check-")
            and not p["metadata"].get("deletionTimestamp")]
    assert not gone, [p["metadata"]["name"] for p in gone]
