"""The Helm chart: lint, offline schema validation of the rendered manifests, and the switches."""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

import pytest
import yaml

from tests.support.chart import (
    CHART,
    DASHBOARD,
    KUBE_VERSION,
    RULES,
    all_switches_on,
    by_kind,
    helm_template,
    one,
    render,
    run,
    tool,
)

CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
OPTIONAL = {  # switch -> kinds it adds
    "serviceMonitor": ["ServiceMonitor"],
    "podMonitor": ["PodMonitor"],
    "prometheusRule": ["PrometheusRule"],
    "networkPolicy": ["NetworkPolicy"],
}
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = one(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    return c


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "DaemonSet")["spec"]["template"]["spec"]


# --- helm lint and schema validation ------------------------------------------------------

@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_strict(values: pathlib.Path) -> None:
    proc = run([tool("helm"), "lint", "--strict", str(CHART), "--values", str(values),
                "--kube-version", KUBE_VERSION])
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_rendered_manifests_validate_against_kubernetes_schemas(values: pathlib.Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = render(yaml.safe_load(values.read_text()))
    checked = 0
    for doc in docs:
        if doc["kind"] in MONITORING_KINDS:
            continue  # CRDs: no offline schema; covered by the structural tests below
        # strict: unknown fields are errors too.
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        checked += 1
    assert checked >= 6


def test_schema_validation_catches_a_bad_manifest() -> None:
    """The validator used above does reject broken manifests (so a pass means something)."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    ds = one(render(), "DaemonSet")
    ds["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, KUBE_VERSION, strict=True)
    ds = one(render(), "DaemonSet")
    ds["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, KUBE_VERSION, strict=True)


def test_values_schema_rejects_unknown_keys_and_bad_types() -> None:
    for bad in ({"servicemonitor": {"enabled": True}},          # typo
                {"serviceMonitor": {"enabled": "yes"}},         # wrong type
                {"terminationGracePeriodSeconds": 10},          # below the agent's budget
                {"config": {"listen": "9142"}},                 # not HOST:PORT
                {"dnsPolicy": "Cluster"}):
        proc = helm_template(bad, check=False)
        assert proc.returncode != 0, bad
        assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr


# --- Defaults --------------------------------------------------------------------------------

def test_defaults_render_only_the_core_resources() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
                            "Service", "DaemonSet", "Pod"])
    assert all(d["metadata"].get("namespace", "monitoring") == "monitoring" for d in docs)


def test_rbac_is_read_only_services_and_endpointslices() -> None:
    docs = render()
    role = one(docs, "ClusterRole")
    rules = sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"])))
                   for r in role["rules"])
    assert rules == [(("",), ("services",), ("get", "list", "watch")),
                     (("discovery.k8s.io",), ("endpointslices",), ("get", "list", "watch"))]
    for r in role["rules"]:
        assert "resourceNames" not in r and "nonResourceURLs" not in r
    binding = one(docs, "ClusterRoleBinding")
    sa = one(docs, "ServiceAccount")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": "monitoring"}]
    assert pod_spec(docs)["serviceAccountName"] == sa["metadata"]["name"]


def test_rbac_and_serviceaccount_switches() -> None:
    docs = render({"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "mine"}})
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    assert not by_kind(docs, "ServiceAccount")
    assert pod_spec(docs)["serviceAccountName"] == "mine"


def test_pod_security_defaults() -> None:
    spec = pod_spec(render())
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(render())["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "hostNetwork" not in spec and "hostPID" not in spec


def test_daemonset_scheduling_and_lifecycle_defaults() -> None:
    docs = render()
    ds = one(docs, "DaemonSet")
    spec = pod_spec(docs)
    assert spec["tolerations"] == [{"operator": "Exists"}]          # every node, every taint
    assert "priorityClassName" not in spec                          # opt-in
    assert spec["dnsPolicy"] == "ClusterFirst"                      # see what pods see
    assert "dnsConfig" not in spec
    assert spec["terminationGracePeriodSeconds"] == 30              # > the agent's 20 s budget
    assert ds["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"]
    c = container(docs)
    assert c["args"] == ["run", "--config", "/etc/svcprobe/config.yaml"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert c["ports"] == [{"name": "http-metrics", "containerPort": 9142, "protocol": "TCP"}]
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    assert "cpu" not in c["resources"]["limits"]   # throttling would skew measured latency
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["config"]["mountPath"] == "/etc/svcprobe" and mounts["config"]["readOnly"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["config"]["configMap"]["name"] == one(docs, "ConfigMap")["metadata"]["name"]


def test_downward_api_identity_env() -> None:
    env = {e["name"]: e for e in container(render({"env": [{"name": "SVCPROBE_LOG_LEVEL",
                                                               "value": "debug"}]}))["env"]}
    assert env["SVCPROBE_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["SVCPROBE_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["SVCPROBE_POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["SVCPROBE_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["SVCPROBE_SHARDING_PEERS_SERVICE"]["value"] == "monitoring/probe-svcprobe"
    assert env["SVCPROBE_LOG_LEVEL"]["value"] == "debug"


def test_selector_labels_are_minimal_and_match() -> None:
    docs = render()
    ds = one(docs, "DaemonSet")
    selector = ds["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "svcprobe", "app.kubernetes.io/instance": "probe"}
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    svc = one(docs, "Service")
    assert svc["spec"]["selector"] == selector


def test_headless_service_for_peers_and_metrics() -> None:
    svc = one(render(), "Service")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"] == [{"name": "http-metrics", "port": 9142,
                                     "targetPort": "http-metrics", "protocol": "TCP"}]


# --- Config pass-through --------------------------------------------------------------------

def test_config_is_rendered_verbatim() -> None:
    config = {"listen": "0.0.0.0:9142", "log_level": "warning",
              "dns": {"forms": ["fqdn"], "query_budget_per_second": 5},
              "scheduler": {"interval_seconds": 60}, "metrics": {"series_budget": 300},
              "selection": {"canaries": ["kube-system/metrics-server"], "namespaces": []}}
    cm = one(render({"config": config}), "ConfigMap")
    # Helm merges user values over the chart's defaults (listen, log_level, log_format).
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    assert yaml.safe_load(cm["data"]["config.yaml"]) == {**defaults, **config}


def test_default_config_matches_values_file() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    cm = one(render(), "ConfigMap")
    assert yaml.safe_load(cm["data"]["config.yaml"]) == values["config"]


def test_config_change_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        ds = one(render(values), "DaemonSet")
        return ds["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = checksum({})
    assert checksum({}) == base
    assert checksum({"config": {"listen": "0.0.0.0:9142", "log_level": "debug"}}) != base


@pytest.mark.parametrize(("listen", "port"), [("0.0.0.0:9200", 9200), ("[::]:9300", 9300),
                                              ("127.0.0.1:8080", 8080)])
def test_port_follows_config_listen(listen: str, port: int) -> None:
    docs = render({"config": {"listen": listen}})
    assert container(docs)["ports"][0]["containerPort"] == port
    assert one(docs, "Service")["spec"]["ports"][0]["port"] == port


def test_port_defaults_when_listen_is_unset() -> None:
    docs = render({"config": {"listen": None, "log_level": "info"}})
    assert container(docs)["ports"][0]["containerPort"] == 9142


# --- Optional resources ---------------------------------------------------------------------

@pytest.mark.parametrize("switch", sorted(OPTIONAL))
def test_optional_resources_off_by_default_and_on_when_enabled(switch: str) -> None:
    kinds = OPTIONAL[switch]
    assert not [d for d in render() if d["kind"] in kinds]
    docs = render({switch: {"enabled": True}})
    assert sorted(d["kind"] for d in docs if d["kind"] in kinds) == sorted(kinds)


def test_dashboard_configmap_switch() -> None:
    assert len(by_kind(render(), "ConfigMap")) == 1
    docs = render({"dashboard": {"enabled": True, "namespace": "grafana"}})
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["namespace"] == "grafana"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(cm["data"]["svcprobe-dashboard.json"])
    assert shipped == json.loads(DASHBOARD.read_text())
    assert shipped["uid"] == "svcprobe-overview"


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PodMonitor"])
def test_monitors_relabel_node_and_job(kind: str) -> None:
    key = {"ServiceMonitor": "serviceMonitor", "PodMonitor": "podMonitor"}[kind]
    docs = render({key: {"enabled": True, "additionalLabels": {"release": "kps"},
                         "relabelings": [{"action": "replace", "targetLabel": "cluster",
                                          "replacement": "c1"}]}})
    mon = one(docs, kind)
    assert mon["apiVersion"] == "monitoring.coreos.com/v1"
    assert mon["metadata"]["labels"]["release"] == "kps"
    assert mon["spec"]["selector"]["matchLabels"] == \
        one(docs, "DaemonSet")["spec"]["selector"]["matchLabels"]
    assert mon["spec"]["namespaceSelector"] == {"matchNames": ["monitoring"]}
    (endpoint,) = mon["spec"]["endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"]
    assert endpoint["port"] == "http-metrics" and endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True   # keeps svcprobe_service_failing's namespace
    relabel = endpoint["relabelings"]
    assert {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"],
            "targetLabel": "node"} in relabel
    assert {"action": "replace", "targetLabel": "job", "replacement": "svcprobe"} in relabel
    assert relabel[-1] == {"action": "replace", "targetLabel": "cluster", "replacement": "c1"}


def shipped_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def alerts_of(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_prometheusrule_carries_the_tested_rules() -> None:
    # The shipped file's runbook links are this chart's for the default install: release and
    # namespace `svcprobe`, so that install gets the tested rules byte for byte.
    rule = one(render({"prometheusRule": {"enabled": True}}, release="svcprobe",
                      namespace="svcprobe"), "PrometheusRule")
    assert rule["spec"]["groups"] == shipped_groups()


@pytest.mark.parametrize(("values", "release", "namespace", "path"), [
    ({}, "probe", "monitoring", "monitoring/services/probe-svcprobe:http-metrics"),
    ({"fullnameOverride": "dnsprobe", "namespaceOverride": "netops",
      "service": {"portName": "metrics"}}, "x", "default", "netops/services/dnsprobe:metrics"),
])
def test_prometheusrule_runbook_links_follow_the_release(values: dict[str, Any], release: str,
                                                         namespace: str, path: str) -> None:
    """Without runbookBaseURL every alert links to the runbook the agents serve at /runbook,
    through `kubectl proxy` and the API server's service proxy to this release's headless
    Service and its port name; nothing else in the rules changes."""
    docs = render({**values, "prometheusRule": {"enabled": True}}, release=release,
                  namespace=namespace)
    base = f"http://localhost:8001/api/v1/namespaces/{path}/proxy/runbook"
    # The very Service and port the chart renders.
    service = one(docs, "Service")
    (port,) = service["spec"]["ports"]
    assert path == f"{service['metadata']['namespace']}/services/{service['metadata']['name']}:{port['name']}"
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    rendered, shipped = alerts_of(groups), alerts_of(shipped_groups())
    assert rendered.keys() == shipped.keys()
    for name, r in rendered.items():
        assert r["annotations"]["runbook_url"] == f"{base}#{name.lower()}"
        r["annotations"]["runbook_url"] = shipped[name]["annotations"]["runbook_url"]
    assert groups == shipped_groups()


def test_prometheusrule_per_alert_overrides() -> None:
    rule = one(render({"prometheusRule": {
        "enabled": True,
        "alertLabels": {"team": "platform", "severity": "page"},
        "alerts": {"SvcprobeDNSLatencyHigh": {"enabled": False},
                   "SvcprobeAgentDown": {"for": "30m", "severity": "info"},
                   "SvcprobeSweepsStale": {"enabled": True},
                   "SvcprobeKubeNotSynced": None}}}), "PrometheusRule")
    groups = rule["spec"]["groups"]
    rendered, shipped = alerts_of(groups), alerts_of(shipped_groups())
    assert set(rendered) == set(shipped) - {"SvcprobeDNSLatencyHigh"}
    down = rendered["SvcprobeAgentDown"]
    assert down["for"] == "30m"
    assert down["labels"] == {"severity": "info", "team": "platform"}   # beats alertLabels too
    assert down["expr"] == shipped["SvcprobeAgentDown"]["expr"]
    for name, r in rendered.items():
        if name != "SvcprobeAgentDown":
            assert r["for"] == shipped[name]["for"], name
            assert r["labels"]["severity"] == shipped[name]["labels"]["severity"], name
    # Recording rules are untouched.
    assert groups[0] == shipped_groups()[0]


def test_prometheusrule_rejects_unknown_alert_names() -> None:
    for name in ("SvcprobeNope", "svcprobeagentdown", "SvcprobeCanaryFailing"):
        proc = helm_template({"prometheusRule": {
            "enabled": True, "alerts": {name: {"enabled": False}},
            "additionalGroups": [{"name": "mine", "rules": [
                {"alert": "SvcprobeCanaryFailing", "expr": "vector(1)"}]}]}}, check=False)
        assert proc.returncode != 0, name
        assert f"prometheusRule.alerts.{name}: svcprobe ships no alert of that name" in proc.stderr
        assert "SvcprobeAgentDown, SvcprobeClusterIPFailingOnNode" in proc.stderr   # the list


def test_prometheusrule_override_values_are_checked_by_the_schema() -> None:
    for bad in ({"SvcprobeAgentDown": {"for": "15 minutes"}},
                {"SvcprobeAgentDown": {"severity": ""}},
                {"SvcprobeAgentDown": {"enabled": "no"}},
                {"SvcprobeAgentDown": {"labels": {"team": "x"}}}):
        proc = helm_template({"prometheusRule": {"enabled": True, "alerts": bad}}, check=False)
        assert proc.returncode != 0, bad
        assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    proc = helm_template({"prometheusRule": {"enabled": True,
                                             "runbookBaseURL": "https://wiki.example/r#x"}},
                         check=False)
    assert proc.returncode != 0


def test_servicemonitor_and_podmonitor_are_exclusive() -> None:
    proc = helm_template({"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
                         check=False)
    assert proc.returncode != 0
    assert "serviceMonitor.enabled and podMonitor.enabled are both true" in proc.stderr
    assert "scrape every svcprobe agent twice" in proc.stderr
    for key in ("serviceMonitor", "podMonitor"):
        kinds = {d["kind"] for d in render({key: {"enabled": True}})}
        assert kinds & {"ServiceMonitor", "PodMonitor"} == {key[0].upper() + key[1:]}


def test_prometheusrule_runbook_url_alert_labels_and_extra_groups() -> None:
    extra = {"name": "mine", "rules": [{"alert": "Mine", "expr": "vector(1)"}]}
    rule = one(render({"prometheusRule": {
        "enabled": True, "runbookBaseURL": "https://wiki.example/svcprobe/",
        "alertLabels": {"team": "platform", "severity": "ignored"},
        "additionalGroups": [extra]}}), "PrometheusRule")
    groups = rule["spec"]["groups"]
    assert groups[-1] == extra
    shipped = [r for g in groups[:-1] for r in g["rules"] if "alert" in r]
    assert shipped
    for r in shipped:
        assert r["annotations"]["runbook_url"] == f"https://wiki.example/svcprobe#{r['alert'].lower()}"
        assert r["labels"]["team"] == "platform"
        assert r["labels"]["severity"] in ("warning", "critical")   # the rule's own wins
    # Prometheus' own {{ $labels }} templates reach the PrometheusRule untouched.
    original = {r["alert"]: r for r in yaml.safe_load(RULES.read_text())["groups"][1]["rules"]}
    for r in shipped:
        for key in ("summary", "description"):
            assert r["annotations"][key] == original[r["alert"]]["annotations"][key]


def test_networkpolicy_allows_peers_test_pod_and_prometheus() -> None:
    docs = render({"networkPolicy": {"enabled": True}})
    np = one(docs, "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress"]    # egress stays open: the agent probes everything
    (ingress,) = np["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
    selectors = [f.get("podSelector", {}).get("matchLabels") for f in ingress["from"]]
    assert one(docs, "DaemonSet")["spec"]["selector"]["matchLabels"] in selectors
    test_pod = one(docs, "Pod")
    assert any(s and s.items() <= test_pod["metadata"]["labels"].items() for s in selectors)
    assert {"app.kubernetes.io/name": "prometheus"} in selectors


def test_helm_test_hook() -> None:
    docs = render()
    pod = one(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = pod["spec"]["containers"]
    assert c["image"] == container(docs)["image"]
    assert c["command"][:2] == ["python3", "-c"]
    compile(c["command"][2], "helm-test", "exec")     # the embedded script is valid Python
    assert '"probe-svcprobe.monitoring.svc"' in c["command"][2]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert not by_kind(render({"helmTest": {"enabled": False}}), "Pod")


def test_fully_enabled_values_render_every_kind() -> None:
    docs = render(all_switches_on())
    kinds = {d["kind"] for d in docs}
    assert kinds >= {"DaemonSet", "Service", "ConfigMap", "ServiceAccount", "ClusterRole",
                     "ClusterRoleBinding", "ServiceMonitor", "PrometheusRule",
                     "NetworkPolicy", "Pod"}
    assert "PodMonitor" not in kinds       # one of the two monitors; see podmonitor-values.yaml
    podmonitor = yaml.safe_load((CHART / "ci" / "podmonitor-values.yaml").read_text())
    assert one(render(podmonitor), "PodMonitor")["metadata"]["namespace"] == "monitoring"
    spec = pod_spec(docs)
    assert spec["priorityClassName"] == "system-node-critical"
    assert container(docs)["image"].startswith("registry.example/svcprobe@sha256:")
    assert container(docs)["ports"][0]["containerPort"] == 9200


def test_image_reference() -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container(render())["image"] == f"svcprobe:{app_version}"
    assert container(render({"image": {"tag": "1.2.3"}}))["image"] == "svcprobe:1.2.3"


def render_notes(tmp_path: pathlib.Path, values: dict[str, Any]) -> str:
    """NOTES.txt as `helm install` would print it. `helm template` skips NOTES.txt and a dry-run
    install needs a cluster, so a copy of the chart gets a template that includes it."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-notes.yaml").write_text(
        'notes: |\n{{ include (print $.Template.BasePath "/NOTES.txt") . | indent 2 }}\n')
    proc = run([tool("helm"), "template", "probe", str(chart), "--namespace", "monitoring",
                "--kube-version", KUBE_VERSION, "--show-only", "templates/zz-notes.yaml",
                "--values", "-"], input=yaml.safe_dump(values))
    return yaml.safe_load(proc.stdout)["notes"]


def test_notes_point_to_next_steps(tmp_path: pathlib.Path) -> None:
    notes = render_notes(tmp_path, {"serviceMonitor": {"enabled": True}})
    assert "rollout status daemonset/probe-svcprobe" in notes
    assert "helm test probe" in notes
    assert "port-forward daemonset/probe-svcprobe 9142" in notes
    assert "/debug/probe?service=" in notes
    assert 'up{job="svcprobe"}' in notes and "serviceMonitor.additionalLabels" in notes
    assert "set prometheusRule.enabled=true" in notes


def test_notes_follow_the_switches(tmp_path: pathlib.Path) -> None:
    notes = render_notes(tmp_path, {"prometheusRule": {"enabled": True},
                                    "dashboard": {"enabled": True}})
    assert "No ServiceMonitor/PodMonitor was" in notes
    assert "Alert rules are installed" in notes
    assert "kubectl proxy &\n     http://localhost:8001/api/v1/namespaces/monitoring/services/" \
        "probe-svcprobe:http-metrics/proxy/runbook\n" in notes
    based = render_notes(tmp_path / "base", {"prometheusRule": {
        "enabled": True, "runbookBaseURL": "https://wiki.example/svcprobe"}})
    assert "Runbook: https://wiki.example/svcprobe" in based and "kubectl proxy" not in based
    assert "uid svcprobe-overview" in notes
