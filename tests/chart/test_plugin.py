"""The kubectl plugin (plugin/kubectl-svcprobe): the one-off pod it makes from the chart's
rendered DaemonSet, validated against the Kubernetes schema, and its run/clean-up/exit-code
flow against a stand-in kubectl (the plugin is what is tested; kubectl's own behaviour is
exercised against a real kube-apiserver in tests/e2e/test_helm_install.py)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.chart import KUBE_VERSION, ROOT, all_switches_on, one, render

PLUGIN = ROOT / "plugin" / "kubectl-svcprobe"


def plugin() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("kubectl_svcprobe", str(PLUGIN))
    spec = importlib.util.spec_from_loader("kubectl_svcprobe", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.parametrize("values", [{}, all_switches_on()], ids=["defaults", "full-values"])
def test_the_one_off_pod_is_the_agents_pod_doing_a_check(values: dict[str, Any]) -> None:
    docs = render(values)
    ds, svc = one(docs, "DaemonSet"), one(docs, "Service")
    pod = plugin().pod_manifest(ds, "check", ["-n", "shop"], node="node-3", image=None, timeout=120)
    agent = ds["spec"]["template"]["spec"]
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    # The agents' image, identity, configuration and hardening.
    assert container["image"] == agent["containers"][0]["image"]
    assert spec["serviceAccountName"] == agent["serviceAccountName"]
    assert container["env"] == agent["containers"][0]["env"]
    assert container["volumeMounts"] == agent["containers"][0]["volumeMounts"] and spec["volumes"] == agent["volumes"]
    assert container.get("securityContext") == agent["containers"][0].get("securityContext")
    # A one-shot check on that node, with the installed configuration and only the report on
    # its log stream.
    assert container["args"] == ["check", "--config", "/etc/svcprobe/config.yaml", "--log-level", "error",
                                 "-n", "shop"]
    assert spec["nodeName"] == "node-3" and spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 120
    assert not {"livenessProbe", "readinessProbe", "ports"} & set(container)
    # Never an agent: the agents' Service does not select it.
    labels = pod["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    assert pod["metadata"]["namespace"] == ds["metadata"]["namespace"]
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(pod, KUBE_VERSION, strict=True)


def test_flags_after_the_command_belong_to_svcprobe() -> None:
    args, rest = plugin().parse(["--node", "n1", "--timeout", "30", "check", "--node", "x", "-o", "json"])
    assert (args.node, args.timeout, args.command) == ("n1", 30.0, "check")
    assert rest == ["--node", "x", "-o", "json"]
    with pytest.raises(SystemExit):
        plugin().parse(["--node", "n1"])


# A stand-in kubectl: answers from a JSON state file and records every call.
FAKE_KUBECTL = r'''#!/usr/bin/env python3
import json, sys
state_file = sys.argv[0] + ".state"
state = json.load(open(state_file))
args = [a for a in sys.argv[1:] if not a.startswith(("--kubeconfig", "--context"))]
state["calls"].append(args)
out = ""
if args[:2] == ["get", "daemonsets"]:
    out = json.dumps({"items": [state["daemonset"]]})
elif args[:2] == ["get", "pods"]:
    out = json.dumps({"items": [{"spec": {"nodeName": "node-9"}, "status": {"phase": "Running"}}]})
elif args[0] == "create":
    state["created"] = json.loads(sys.stdin.read())
elif args[:2] == ["get", "pod"]:
    state["polls"] += 1
    out = json.dumps(state["pod"] if state["polls"] >= 2 else {"spec": {}, "status": {"phase": "Pending"}})
elif args[0] == "logs":
    out = state["logs"]
elif args[0] == "delete":
    state["deleted"] = args[2]
json.dump(state, open(state_file, "w"))
sys.stdout.write(out)
'''


def fake_kubectl(tmp: Path, pod: dict[str, Any]) -> Path:
    exe = tmp / "kubectl"
    exe.write_text(FAKE_KUBECTL.replace("#!/usr/bin/env python3", f"#!{sys.executable}"))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    ds = one(render({}), "DaemonSet")
    (tmp / "kubectl.state").write_text(json.dumps({"calls": [], "daemonset": ds, "pod": pod, "polls": 0,
                                                   "logs": "FINDINGS (1)\n...report...\n"}))
    return exe


def run_plugin(exe: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    cp = subprocess.run([sys.executable, str(PLUGIN), "--kubectl", str(exe), *args], capture_output=True,
                        text=True, timeout=60, env={**os.environ, "KUBECTL": ""})
    return cp, json.loads(Path(str(exe) + ".state").read_text())


def test_streams_the_report_exits_with_its_code_and_deletes_the_pod(tmp_path: Path) -> None:
    done = {"spec": {"nodeName": "node-9"},
            "status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 1}}}]}}
    cp, state = run_plugin(fake_kubectl(tmp_path, done), "check", "-o", "json")
    assert cp.returncode == 1, cp.stderr  # svcprobe check's own code: something failing
    assert cp.stdout == "FINDINGS (1)\n...report...\n"
    assert state["created"]["spec"]["nodeName"] == "node-9"  # a node where an agent runs
    assert state["created"]["spec"]["containers"][0]["args"][-2:] == ["-o", "json"]
    assert state["deleted"] == state["created"]["metadata"]["name"]


@pytest.mark.parametrize(("status", "says"), [
    ({"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]},
     "did not start within 3s: ContainerCreating"),
    ({"phase": "Pending", "containerStatuses": [
        {"state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}]},
     "cannot start: ImagePullBackOff: no such image"),  # at once, not after the timeout
    ({"phase": "Failed", "reason": "OutOfcpu", "message": "Node didn't have enough resource: cpu"},
     "ended without running: OutOfcpu: Node didn't have enough resource: cpu"),
], ids=["never-starts", "image-pull", "rejected-by-the-kubelet"])
def test_a_pod_that_does_not_run_is_reported_and_deleted(tmp_path: Path, status: dict[str, Any], says: str) -> None:
    stuck = {"spec": {"nodeName": "node-2"}, "status": status}
    cp, state = run_plugin(fake_kubectl(tmp_path, stuck), "--timeout", "3", "--node", "node-2", "check")
    assert cp.returncode == 2 and says in cp.stderr, cp.stderr
    assert state["created"]["spec"]["nodeName"] == "node-2"
    assert state["deleted"] == state["created"]["metadata"]["name"]


def test_print_pod_creates_nothing(tmp_path: Path) -> None:
    cp, state = run_plugin(fake_kubectl(tmp_path, {}), "--print-pod", "--node", "n", "diagnose")
    assert cp.returncode == 0 and json.loads(cp.stdout)["spec"]["containers"][0]["args"][0] == "diagnose"
    assert "created" not in state and all(c[0] == "get" for c in state["calls"])


def test_the_network_policy_lets_a_one_off_diagnose_reach_the_agents() -> None:
    docs = render({"networkPolicy": {"enabled": True}})
    pod = plugin().pod_manifest(one(docs, "DaemonSet"), "diagnose", [], node="n", image=None, timeout=60)
    [rule] = one(docs, "NetworkPolicy")["spec"]["ingress"]
    selectors = [f["podSelector"]["matchLabels"] for f in rule["from"] if "podSelector" in f and len(f) == 1]
    assert any(all(pod["metadata"]["labels"].get(k) == v for k, v in sel.items()) for sel in selectors)
