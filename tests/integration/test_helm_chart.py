"""The Helm chart, rendered by the real helm: lint, options, schema, security, policies.

`helm install deployguard charts/deployguard` must be the whole story, so the chart is
checked the way an operator meets it: helm lint and helm template with the default
values and each major option, bad values refused with a message a person can act
on, and every container locked down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES, REPO, tool
from webhook.config import Settings, load_settings

CHART = REPO / "charts" / "deployguard"
NAMESPACE = "deployguard-system"

# The major options (issue 7) and what each must change.
OPTIONS: dict[str, list[str]] = {
    "defaults": [],
    "cert-manager": ["--set", "certificates.mode=cert-manager"],
    "embedded-engine": ["--set", "engine=embedded"],
    "wasm-engine": ["--set", "engine=wasm"],
    "fail-open": ["--set", "webhook.failurePolicy=Ignore"],
    "monitoring": ["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true"],
    "warn-first": ["--set", "policies.mode=warn"],
    "mutual-tls": [
        "--set", "tls.clientCA.enabled=true",
        "--set", "tls.clientCA.existingSecret=apiserver-client-ca",
        "--set", "workers=2",
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "networkPolicy.enabled=true",
    ],
}  # fmt: skip


def helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool("helm")), *args, str(chart)], capture_output=True, text=True, timeout=120, check=False
    )


def render(*args: str, chart: Path = CHART) -> list[dict[str, Any]]:
    result = helm("template", "deployguard", "--namespace", NAMESPACE, *args, chart=chart)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            specs.append((name, doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "CronJob":
            specs.append((name, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return specs


@pytest.mark.integration
@pytest.mark.parametrize("option", list(OPTIONS))
def test_helm_lint_passes(option: str) -> None:
    result = helm("lint", "--strict", "--namespace", NAMESPACE, *OPTIONS[option])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.integration
@pytest.mark.parametrize("option", list(OPTIONS))
def test_every_container_is_locked_down(option: str) -> None:
    specs = pod_specs(render(*OPTIONS[option]))
    assert {name.split("/")[0] for name, _ in specs} >= {"Deployment"}
    for name, spec in specs:
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, name
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        containers = spec.get("initContainers", []) + spec["containers"]
        for container in containers:
            where = f"{name} container {container['name']}"
            ctx = container.get("securityContext", {})
            assert ctx.get("runAsNonRoot") is True, where
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert ctx.get("readOnlyRootFilesystem") is True, where
            assert ctx.get("privileged", False) is False, where
            assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where
            assert ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], where
            assert not container["image"].endswith(":latest"), where


@pytest.mark.integration
def test_default_install_is_highly_available_fail_closed_with_the_opa_sidecar() -> None:
    docs = render()
    (deployment,) = by_kind(docs, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["affinity"]["podAntiAffinity"]
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    (webhook,) = spec["containers"]
    assert webhook["args"] == ["serve", "--config", "/etc/deployguard/config.yaml"]
    assert webhook["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert webhook["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    (opa,) = spec["initContainers"]
    assert opa["restartPolicy"] == "Always"  # a native sidecar: up before the webhook
    assert "--addr=127.0.0.1:8181" in opa["args"]
    (vwc,) = by_kind(docs, "ValidatingWebhookConfiguration")
    (hook,) = vwc["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "NoneOnDryRun" and hook["timeoutSeconds"] == 10
    assert hook["clientConfig"]["service"]["path"] == "/validate"
    exempt = hook["namespaceSelector"]["matchExpressions"][0]
    assert exempt["key"] == "kubernetes.io/metadata.name" and exempt["operator"] == "NotIn"
    assert set(exempt["values"]) == {"kube-system", NAMESPACE}
    resources = {r for rule in hook["rules"] for r in rule["resources"]}
    assert resources >= {"pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs"}
    assert hook["matchConditions"]
    (netpol,) = by_kind(docs, "NetworkPolicy")
    assert netpol["spec"]["ingress"][0]["ports"] == [{"port": 8443, "protocol": "TCP"}]


@pytest.mark.integration
def test_rendered_config_is_what_deployguard_serve_reads(tmp_path: Path) -> None:
    for option, engine in (("defaults", "opa"), ("embedded-engine", "embedded"), ("wasm-engine", "wasm")):
        (config_map,) = [d for d in by_kind(render(*OPTIONS[option]), "ConfigMap") if "config.yaml" in d["data"]]
        path = tmp_path / f"{option}.yaml"
        path.write_text(config_map["data"]["config.yaml"])
        settings = load_settings(path)
        assert settings.policy.engine == engine
        assert settings.policy.opa_binary == "/usr/local/bin/opa"  # where the image puts it (Dockerfile)
        assert settings.policy.directory == Path("/etc/deployguard/policies")
        assert settings.server.certfile == Path("/etc/deployguard/tls/tls.crt")
        assert settings.admission.deadline_seconds < 10


def rendered_settings(docs: list[dict[str, Any]], into: Path) -> Settings:
    """The config.yaml of the rendered ConfigMap, read by deployguard's own loader."""
    (config_map,) = [d for d in by_kind(docs, "ConfigMap") if "config.yaml" in d["data"]]
    into.write_text(config_map["data"]["config.yaml"])
    return load_settings(into)


def webhook_pod(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment's pod spec and its deployguard container."""
    (deployment,) = by_kind(docs, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "deployguard"]
    return spec, container


@pytest.mark.integration
def test_workers_reach_the_config(tmp_path: Path) -> None:
    assert rendered_settings(render(), tmp_path / "default.yaml").server.workers == 1
    settings = rendered_settings(render("--set", "workers=4"), tmp_path / "four.yaml")
    assert settings.server.workers == 4


CA_ITEMS = [{"key": "root.pem", "path": "ca.crt"}]  # whatever the key, the file is ca.crt


@pytest.mark.integration
@pytest.mark.parametrize(
    ("source", "volume"),
    [
        ("existingSecret", {"secret": {"secretName": "apiserver-client-ca", "items": CA_ITEMS}}),
        ("existingConfigMap", {"configMap": {"name": "apiserver-client-ca", "items": CA_ITEMS}}),
    ],
)
def test_client_ca_is_mounted_and_configured(tmp_path: Path, source: str, volume: dict[str, Any]) -> None:
    default = render()
    assert rendered_settings(default, tmp_path / "default.yaml").server.client_ca_file is None
    spec, container = webhook_pod(default)
    assert "client-ca" not in {v["name"] for v in spec["volumes"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"

    docs = render(
        "--set", "tls.clientCA.enabled=true",
        "--set", f"tls.clientCA.{source}=apiserver-client-ca",
        "--set", "tls.clientCA.key=root.pem",
    )  # fmt: skip
    settings = rendered_settings(docs, tmp_path / "mtls.yaml")
    assert settings.server.client_ca_file == Path("/etc/deployguard/client-ca/ca.crt")
    spec, container = webhook_pod(docs)
    (mounted,) = [v for v in spec["volumes"] if v["name"] == "client-ca"]
    assert mounted == {"name": "client-ca", **volume}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "client-ca"]
    assert settings.server.client_ca_file.parent == Path(mount["mountPath"]) and mount["readOnly"] is True
    # The kubelet presents no client certificate: HTTPS probes would fail the handshake, so
    # it asks the plain-HTTP probe listener, which the config opens on the port the pod names.
    assert settings.server.probe_port == 8081
    assert {"name": "probes", "containerPort": 8081} in container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}


@pytest.mark.integration
def test_the_grace_period_outlasts_prestop_and_the_workers_drain() -> None:
    """SIGTERM comes after preStop; the supervisor of several workers kills what outlives 25 s."""
    from webhook.workers import STOP_GRACE_SECONDS

    spec, container = webhook_pod(render("--set", "workers=2"))
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > pre_stop + STOP_GRACE_SECONDS


@pytest.mark.integration
def test_under_mtls_prometheus_scrapes_the_probe_port(tmp_path: Path) -> None:
    """No client certificate for Prometheus either: /metrics on the plain probe port, exposed and allowed."""
    plain = render("--set", "metrics.serviceMonitor.enabled=true")
    (monitor,) = by_kind(plain, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "https" and monitor["spec"]["endpoints"][0]["scheme"] == "https"
    assert rendered_settings(plain, tmp_path / "plain.yaml").server.probe_port_metrics is False

    docs = render(
        "--set", "tls.clientCA.enabled=true", "--set", "tls.clientCA.existingSecret=apiserver-client-ca",
        "--set", "metrics.serviceMonitor.enabled=true",
    )  # fmt: skip
    server = rendered_settings(docs, tmp_path / "mtls.yaml").server
    assert (server.probe_port, server.probe_port_metrics) == (8081, True)
    (monitor,) = by_kind(docs, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "probes" and endpoint["scheme"] == "http" and "tlsConfig" not in endpoint
    (service,) = by_kind(docs, "Service")
    assert {"name": "probes", "port": 8081, "targetPort": "probes", "protocol": "TCP"} in service["spec"]["ports"]
    (policy,) = by_kind(docs, "NetworkPolicy")
    assert {"port": 8081, "protocol": "TCP"} in policy["spec"]["ingress"][0]["ports"]

    without_monitor = render(
        "--set", "tls.clientCA.enabled=true", "--set", "tls.clientCA.existingSecret=apiserver-client-ca"
    )  # fmt: skip
    assert rendered_settings(without_monitor, tmp_path / "quiet.yaml").server.probe_port_metrics is False
    (service,) = by_kind(without_monitor, "Service")
    assert [p["name"] for p in service["spec"]["ports"]] == ["https"]


@pytest.mark.integration
def test_network_policy_admits_the_api_server_and_prometheus_once_narrowed() -> None:
    api_server = {"ipBlock": {"cidr": "10.0.0.0/24"}}
    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    namespace_label = "kubernetes\\.io/metadata\\.name"
    narrowed = ["--set", "networkPolicy.ingressFrom[0].ipBlock.cidr=10.0.0.0/24",
                "--set", f"networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.{namespace_label}=monitoring"]
    for extra, ports in (([], [8443]), (OPTIONS["mutual-tls"], [8443, 8081])):
        (policy,) = by_kind(render(*narrowed, *extra), "NetworkPolicy")
        (rule,) = policy["spec"]["ingress"]
        assert [p["port"] for p in rule["ports"]] == ports
        assert rule["from"] == [api_server, prometheus]
    # metricsFrom alone does not narrow anything: without ingressFrom the API server's address is unknown
    (policy,) = by_kind(render("--set", "networkPolicy.metricsFrom[0].podSelector.matchLabels.app=prometheus"),
                        "NetworkPolicy")
    assert "from" not in policy["spec"]["ingress"][0]


def freeze_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    roles = [r for r in by_kind(docs, "ClusterRole") if "certs" not in r["metadata"]["name"]]
    return [rule for role in roles for rule in role["rules"] if "deployguard.io" in rule["apiGroups"]]


@pytest.mark.integration
def test_change_calendar_watch_reaches_the_config_with_the_rbac_it_needs(tmp_path: Path) -> None:
    default = render()
    windows = rendered_settings(default, tmp_path / "default.yaml").windows
    assert windows.watch_kubernetes is True
    assert (windows.resync_seconds, windows.stale_after_seconds) == (300, 120)
    (rule,) = freeze_rules(default)
    assert set(rule["verbs"]) >= {"get", "list", "watch"}
    kinds = ("changefreezes", "changewindows", "clusterchangefreezes", "clusterchangewindows")
    assert {p.name for p in (CHART / "crds").glob("*.yaml")} == {f"{kind}.yaml" for kind in kinds}

    # helm --set makes 30.5 a string (the schema refuses it); --set-json or a values file keeps the number.
    tuned = render("--set", "changeCalendar.resyncSeconds=60", "--set-json", "changeCalendar.staleAfterSeconds=30.5")
    windows = rendered_settings(tuned, tmp_path / "tuned.yaml").windows
    assert (windows.resync_seconds, windows.stale_after_seconds) == (60, 30.5)

    off = render("--set", "changeCalendar.watchKubernetes=false", "--set", "rbac.freezes=false")
    assert rendered_settings(off, tmp_path / "off.yaml").windows.watch_kubernetes is False
    assert not freeze_rules(off)
    # Without the chart's RBAC the operator grants it; the chart cannot check.
    own = render("--set", "rbac.create=false", "--set", "rbac.freezes=false")
    assert rendered_settings(own, tmp_path / "own.yaml").windows.watch_kubernetes is True


@pytest.mark.integration
def test_certificate_options() -> None:
    default = render()
    assert not [d for d in default if d["apiVersion"].startswith("cert-manager.io")]
    jobs = by_kind(default, "Job")
    phases = sorted(j["metadata"]["annotations"]["helm.sh/hook"] for j in jobs)
    assert phases == ["post-install,post-upgrade", "pre-install,pre-upgrade"]
    for job in jobs + [c["spec"]["jobTemplate"] for c in by_kind(default, "CronJob")]:
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[:2] == ["certs", "kube"]
    # The Job may touch exactly the two Secrets and the one webhook configuration.
    cluster_roles = [r for r in by_kind(default, "ClusterRole") if "certs" in r["metadata"]["name"]]
    assert cluster_roles
    for role in cluster_roles:
        assert role["rules"] == [
            {
                "apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["validatingwebhookconfigurations"],
                "resourceNames": ["deployguard-deployguard-system"],
                "verbs": ["get", "update"],
            }
        ]
    with_cm = render(*OPTIONS["cert-manager"])
    assert not by_kind(with_cm, "Job") and not by_kind(with_cm, "CronJob")
    (vwc,) = by_kind(with_cm, "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/deployguard-serving"
    serving = [c for c in by_kind(with_cm, "Certificate") if c["metadata"]["name"] == "deployguard-serving"]
    assert serving and "deployguard.deployguard-system.svc" in serving[0]["spec"]["dnsNames"]
    assert serving[0]["spec"]["secretName"] == "deployguard-tls"


@pytest.mark.integration
def test_fail_open_and_embedded_options_change_what_they_say() -> None:
    (vwc,) = by_kind(render(*OPTIONS["fail-open"]), "ValidatingWebhookConfiguration")
    assert vwc["webhooks"][0]["failurePolicy"] == "Ignore"
    for in_process in ("embedded-engine", "wasm-engine"):
        (deployment,) = by_kind(render(*OPTIONS[in_process]), "Deployment")
        assert "initContainers" not in deployment["spec"]["template"]["spec"]


# values -> words the operator must see
BAD_VALUES = [
    (["--set", "webhook.failurePolicy=Never"], "value must be one of 'Fail', 'Ignore'"),
    (["--set", "replicaCount=0"], "/replicaCount"),
    (["--set", "engine=rego-cpp"], "value must be one of 'opa', 'embedded', 'wasm'"),
    (["--set", "webhook.timeoutSeconds=45"], "/webhook/timeoutSeconds"),
    (["--set", "securityContext.readOnlyRootFilesystem=false"], "/securityContext/readOnlyRootFilesystem"),
    (["--set", "securityContext.runAsNonRoot=false"], "/securityContext/runAsNonRoot"),
    (["--set", "policies.mode=audit"], "/policies/mode"),
    (["--set", "certificates.mode=vault"], "value must be one of 'hook', 'cert-manager'"),
    (["--set", "replicas=3"], "additional properties 'replicas' not allowed"),
    (["--set", "image.tag=latest"], 'image.tag is "latest": pin a version'),
    (["--set", "admission.deadlineSeconds=12"], "must be below webhook.timeoutSeconds"),
    (["--set", "replicaCount=1"], "run at least 2 replicas"),
    (["--set", "workers=two"], "at '/workers': got string, want integer"),
    (["--set", "workers=0"], "at '/workers': minimum"),
    (["--set", "tls.clientCA.enabled=yes"], "at '/tls/clientCA/enabled': got string, want boolean"),
    (["--set", "tls.clientCA.existingSecret=Not_A_Name"], "/tls/clientCA/existingSecret"),
    (["--set", "tls.clientCA.ca=x"], "additional properties 'ca' not allowed"),
    (["--set", "tls.clientCA.probePort=8443"], "/tls/clientCA/probePort"),
    (["--set", "changeCalendar.watchKubernetes=1"], "at '/changeCalendar/watchKubernetes': got number, want boolean"),
    (["--set", "changeCalendar.resyncSeconds=soon"], "at '/changeCalendar/resyncSeconds': got string, want number"),
    (["--set", "changeCalendar.staleAfterSeconds=0"], "/changeCalendar/staleAfterSeconds"),
    (["--set", "tls.clientCA.enabled=true"], "name the client CA's existingConfigMap or its existingSecret"),
    (
        ["--set", "tls.clientCA.enabled=true,tls.clientCA.existingSecret=a,tls.clientCA.existingConfigMap=b"],
        "name the client CA's existingConfigMap or its existingSecret (one of them)",
    ),
    (["--set", "rbac.freezes=false"], "changeCalendar.watchKubernetes needs rbac.freezes"),
    (
        ["--set", "networkPolicy.ingressFrom[0].ipBlock.cidr=10.0.0.0/24",
         "--set", "metrics.serviceMonitor.enabled=true"],
        "add Prometheus's pods to networkPolicy.metricsFrom",
    ),
    (["--set", "networkPolicy.metricsFrom[0]=monitoring"], "'/networkPolicy/metricsFrom/0': got string, want object"),
    # deployguard would refuse to start: more than server.max_receiving_body_bytes (32 MiB) for one body
    (["--set", "admission.maxBodyBytes=67108864"], "at '/admission/maxBodyBytes': maximum"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("values", "message"), BAD_VALUES, ids=[" ".join(v[1:]) for v, _ in BAD_VALUES])
def test_bad_values_are_refused_with_a_clear_message(values: list[str], message: str) -> None:
    result = helm("template", "deployguard", "--namespace", NAMESPACE, *values)
    assert result.returncode != 0, f"helm accepted {values}"
    assert message in result.stderr, result.stderr


def kubelet_volume(data: dict[str, str], into: Path) -> Path:
    """Lay out a ConfigMap as the kubelet's atomic writer does: ..data and symlinks."""
    stamp = into / "..2026_01_01_00_00_00.000000001"
    stamp.mkdir(parents=True)
    for key, text in data.items():
        (stamp / key).write_text(text)
    (into / "..data").symlink_to(stamp.name)
    for key in data:
        (into / key).symlink_to(f"..data/{key}")
    return into


def check(policies: Path, manifest: Path) -> dict[str, Any]:
    """`deployguard check -o json` with these policies: the one outcome."""
    deployguard = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "deployguard"
    if not deployguard.exists():
        deployguard = Path(shutil.which("deployguard") or "deployguard")
    result = subprocess.run(
        [str(deployguard), "check", "-o", "json", "-f", str(manifest), "--policies", str(policies)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    (outcome,) = json.loads(result.stdout)
    assert outcome["error"] is None, outcome
    assert outcome["allowed"] == (result.returncode == 0)
    return dict(outcome)


def findings(outcome: dict[str, Any], *modes: str) -> set[tuple[str, str]]:
    return {(f["rule"], f["message"]) for f in outcome["findings"] if f["mode"] in modes}


@pytest.mark.integration
def test_policies_config_map_decides_like_the_repository_and_warn_mode_only_warns(tmp_path: Path) -> None:
    bad = EXAMPLES / "deployment-latest.yaml"
    reference = check(REPO / "policies", bad)
    assert not reference["allowed"]
    denied = findings(reference, "deny")
    assert "digest_pinning" in {rule for rule, _ in denied}

    (enforcing,) = [d for d in by_kind(render(), "ConfigMap") if "data.yaml" in d["data"]]
    mounted = check(kubelet_volume(enforcing["data"], tmp_path / "enforce"), bad)
    assert not mounted["allowed"]
    assert findings(mounted, "deny") == denied

    (warning,) = [d for d in by_kind(render(*OPTIONS["warn-first"]), "ConfigMap") if "data.yaml" in d["data"]]
    modes = yaml.safe_load(warning["data"]["data.yaml"])["deployguard"]["config"]["rules"]
    assert modes and all(entry["mode"] in ("warn", "dryrun") for entry in modes.values())
    warned = check(kubelet_volume(warning["data"], tmp_path / "warn"), bad)
    assert warned["allowed"], warned["message"]
    assert findings(warned, "warn") >= denied  # every denial of the repository is a warning now


@pytest.mark.integration
def test_rule_modes_and_policy_config_reach_the_data() -> None:
    (cm,) = [
        d
        for d in by_kind(
            render(
                "--set", "policies.ruleModes.release_id=enforce",
                "--set", "policies.config.allowed_registries.registries={registry.example.com}",
            ),
            "ConfigMap",
        )
        if "data.yaml" in d["data"]
    ]
    config = yaml.safe_load(cm["data"]["data.yaml"])["deployguard"]["config"]
    assert config["rules"]["release_id"]["mode"] == "enforce"
    assert config["allowed_registries"]["registries"] == ["registry.example.com"]


@pytest.mark.integration
def test_dashboard_and_alerts_are_included_only_when_the_chart_carries_them(tmp_path: Path) -> None:
    chart = tmp_path / "deployguard"
    shutil.copytree(CHART, chart)
    shutil.rmtree(chart / "files", ignore_errors=True)
    monitoring = OPTIONS["monitoring"]
    bare = render(*monitoring, chart=chart)
    assert not by_kind(bare, "PrometheusRule")
    assert not [d for d in by_kind(bare, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]

    (chart / "files").mkdir()
    (chart / "files" / "alerts.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "deployguard", "rules": [{"alert": "DeployguardDown", "expr": "1"}]}]})
    )
    (chart / "files" / "grafana-dashboard.json").write_text('{"title": "deployguard"}')
    full = render(*monitoring, chart=chart)
    (rule,) = by_kind(full, "PrometheusRule")
    assert rule["spec"]["groups"][0]["rules"][0]["alert"] == "DeployguardDown"
    (dashboard,) = [d for d in by_kind(full, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "grafana-dashboard.json" in dashboard["data"]
    assert not by_kind(render(chart=chart), "PrometheusRule")  # off unless enabled
