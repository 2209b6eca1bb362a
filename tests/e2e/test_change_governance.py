"""Change governance through the real control plane: freezes, rollbacks and break-glass.

A second deployguard watches ChangeFreeze objects (windows.watch_kubernetes), reads
rollout history and records used break-glass tokens through the API server
(kube_api.kubeconfig) and trusts one approver key made by ``deployguard break-glass
keygen``. It is registered instead of the session's deployguard for this module and the
session's registration is put back afterwards. The CRDs come from the chart
(charts/deployguard/crds). kube-controller-manager makes the ReplicaSets that carry a
Deployment's history, so ``kubectl rollout undo`` really is a rollback.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.controlplane import WEBHOOK_NAMESPACE, DeployguardServer, Kubectl, KubectlResult, LocalControlPlane
from tests.factories import workload
from webhook.governance.break_glass import BreakGlassError
from webhook.governance.break_glass_commit import BreakGlassLedger
from webhook.kube_api import KubeApi

pytestmark = pytest.mark.e2e

CRDS = Path(__file__).resolve().parents[2] / "charts" / "deployguard" / "crds"
POLICIES = Path(__file__).resolve().parents[2] / "policies"
V1, V2, V3 = (f"nginx@sha256:{c * 64}" for c in "123")
BREAK_GLASS = "deployguard.io/break-glass"


def _until(check: Callable[[], KubectlResult | None], what: str, timeout: float = 30) -> KubectlResult:
    """Poll ``check`` until it returns a result (the watch and the controllers are asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def approver(control_plane: LocalControlPlane, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An approver key pair made by ``deployguard break-glass keygen``: (private, public)."""
    keys = tmp_path_factory.mktemp("approver")
    private, public = keys / "oncall.key", keys / "oncall.pub"
    argv = [
        *control_plane.tools.deployguard,
        "break-glass",
        "keygen",
        "--private",
        str(private),
        "--public",
        str(public),
    ]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    return private, public


@pytest.fixture(scope="module")
def governed(
    control_plane: LocalControlPlane, approver: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeployguardServer]:
    """deployguard with the Kubernetes calendar, rollback detection and break-glass, registered."""
    kubectl = control_plane.kubectl
    applied = kubectl("apply", "-f", str(CRDS))
    assert applied.ok, applied
    established = kubectl("wait", "--for", "condition=established", "--timeout=60s", "-f", str(CRDS))
    assert established.ok, established
    work = tmp_path_factory.mktemp("governed")
    policies = shutil.copytree(POLICIES, work / "policies")  # its own copy: a test may change its data
    extra = {
        "windows": {"watch_kubernetes": True, "resync_seconds": 30, "stale_after_seconds": 20},
        "break_glass": {"public_keys": {"oncall": str(approver[1])}},
        "policy": {"directory": str(policies), "reload_interval_seconds": 0.5},
        "change": {"namespace_labels_ttl_seconds": 1},
    }
    server = DeployguardServer(control_plane.tools.deployguard, work, work / "logs", name="deployguard-governed",
                               kubeconfig=control_plane.kubeconfig, extra_config=extra)  # fmt: skip
    try:
        with control_plane.serving(server, "governed deployguard"):
            yield server
    finally:
        control_plane.restore_session_registration()


def freeze(namespace: str, name: str = "incident-42", **spec: Any) -> dict[str, Any]:
    """A ChangeFreeze in force from an hour ago for ``hours`` more hours, in Europe/Berlin."""
    now = datetime.now(UTC).replace(microsecond=0)
    body = {
        "reason": "payment outage",
        "declaredBy": "sre-oncall",
        "ticket": "INC-42",
        "timeZone": "Europe/Berlin",
        "start": (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "end": (now + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
        **spec,
    }
    return {
        "apiVersion": "deployguard.io/v1alpha1",
        "kind": "ChangeFreeze",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def deployment(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    result = kubectl("get", "deployment", "web", "-n", namespace, "-o", "json")
    assert result.ok, result
    obj: dict[str, Any] = json.loads(result.stdout)
    return obj


def replica_set_images(kubectl: Kubectl, namespace: str) -> set[str]:
    result = kubectl("get", "replicasets", "-n", namespace, "-o", "json")
    assert result.ok, result
    return {rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in json.loads(result.stdout)["items"]}


def rolled_out(kubectl: Kubectl, namespace: str, *images: str) -> None:
    """Wait until kube-controller-manager made a ReplicaSet for each image (the rollout history)."""
    _until(
        lambda: (
            kubectl("get", "rs", "-n", namespace) if set(images) <= replica_set_images(kubectl, namespace) else None
        ),
        f"ReplicaSets for {images} in {namespace}",
    )


def freeze_in_force(kubectl: Kubectl, namespace: str, manifest: dict[str, Any]) -> KubectlResult:
    """Apply the freeze and wait until the webhook's watch has it (a dry-run rollout is denied by it)."""
    return freeze_in_force_for(kubectl, namespace, manifest, "deployment/web")


def freeze_in_force_for(kubectl: Kubectl, namespace: str, manifest: dict[str, Any], target: str) -> KubectlResult:
    applied = kubectl.apply(manifest)
    assert applied.ok, applied
    name = manifest["metadata"]["name"]

    def denied_by_it() -> KubectlResult | None:
        result = kubectl("set", "image", target, f"web={V3}", "-n", namespace, "--dry-run=server")
        return result if result.denied_by_deployguard and f"ChangeFreeze {namespace}/{name}" in result.stderr else None

    return _until(denied_by_it, f"deployguard to see ChangeFreeze {namespace}/{name}")


def deployed(kubectl: Kubectl, namespace: str, *history: str, zone: str = "") -> None:
    """A Deployment ``web`` created at history[0] and rolled out through the rest, before any freeze."""
    obj = workload("Deployment", history[0], namespace=namespace)
    if zone:  # the team's zone: deny messages show times in it
        obj["metadata"]["annotations"] = {"deployguard.io/time-zone": zone}
    created = kubectl.apply(obj)
    assert created.ok, created
    for image in history[1:]:
        rolled = kubectl("set", "image", "deployment/web", f"web={image}", "-n", namespace)
        assert rolled.ok, rolled
    rolled_out(kubectl, namespace, *history)


def test_a_freeze_denies_a_rollout_with_its_name_and_reopening_time_but_scale_and_undo_pass(
    kubectl: Kubectl, governed: DeployguardServer, control_plane: LocalControlPlane, namespace: str
) -> None:
    deployed(kubectl, namespace, V1, V2, zone="America/New_York")
    manifest = freeze(namespace)
    freeze_in_force(kubectl, namespace, manifest)
    end = datetime.fromisoformat(manifest["spec"]["end"]).astimezone(ZoneInfo("America/New_York"))

    denied = kubectl("set", "image", "deployment/web", f"web={V3}", "-n", namespace)

    assert denied.denied_by_deployguard, denied
    for text in (
        "[change_freeze]",
        f"Deployment {namespace}/web: rollout blocked by ChangeFreeze {namespace}/incident-42 (payment outage)",
        "declared by sre-oncall (ticket INC-42)",
        f"deploys open again at {end:%Y-%m-%d %H:%M} {end.tzname()} (America/New_York)",  # the workload's zone
        f"break-glass sign --namespace {namespace} --kind Deployment --name web --template-hash sha256:",
    ):
        assert text in denied.stderr, f"missing {text!r} in:\n{denied.stderr}"
    assert deployment(kubectl, namespace)["spec"]["template"]["spec"]["containers"][0]["image"] == V2
    # What the people involved see: `deployguard windows status` reads the same objects from the cluster.
    argv = [*control_plane.tools.deployguard, "windows", "status", "--kubeconfig", str(control_plane.kubeconfig)]
    argv += ["--namespace", namespace, "--zone", "America/New_York", "--output", "json"]
    shown = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["rollouts_blocked"] is True and status["opens_at"]["America/New_York"] == end.isoformat(
        "T", "minutes"
    )
    assert [(e["name"], e["in_force"]) for e in status["entries"]] == [("incident-42", True)], status

    scaled = kubectl("scale", "deployment/web", "--replicas=3", "-n", namespace)
    assert scaled.ok, scaled
    patched = kubectl("patch", "deployment/web", "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":4}}')
    assert patched.ok, patched  # a replicas change of the Deployment itself is sent to deployguard: a scale

    undone = kubectl("rollout", "undo", "deployment/web", "-n", namespace)

    assert undone.ok, undone
    assert deployment(kubectl, namespace)["spec"]["template"]["spec"]["containers"][0]["image"] == V1
    records = [r for r in governed.decisions() if r.get("namespace") == namespace and r.get("kind") == "Deployment"]
    assert any(r.get("change_type") == "rollback" and r["allowed"] for r in records), records
    assert any(r.get("change_type") == "scale" and r["allowed"] for r in records), records


def signed_rollout(
    kubectl: Kubectl, control_plane: LocalControlPlane, approver: tuple[Path, Path], namespace: str, manifest: Path,
    *, ticket: str,
) -> tuple[dict[str, Any], str, str]:  # fmt: skip
    """The approver signs a rollout of ``web`` to V2 as it will reach the API server (the live object,
    new image) with ``deployguard break-glass sign``; the object, annotated with the token, is written
    to ``manifest``. Returns the object, the token and the CLI's stderr."""
    live = deployment(kubectl, namespace)
    live.pop("status", None)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = V2
    manifest.write_text(yaml.safe_dump(live))
    argv = [*control_plane.tools.deployguard, "break-glass", "sign", "--key", str(approver[0]), "--key-id", "oncall"]
    argv += ["--file", str(manifest), "--reason", "hotfix for the outage", "--ticket", ticket, "--ttl", "30m"]
    signed = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert signed.returncode == 0, signed.stderr
    token = signed.stdout.strip()
    live["metadata"].setdefault("annotations", {})[BREAK_GLASS] = token
    manifest.write_text(yaml.safe_dump(live))
    return live, token, signed.stderr


def replay(kubectl: Kubectl, namespace: str, live: dict[str, Any]) -> KubectlResult:
    """Delete ``web`` and create it again from ``live`` (same template, same break-glass annotation)."""
    deleted = kubectl("delete", "deployment", "web", "-n", namespace, "--wait=true")
    assert deleted.ok, deleted
    keep = ("name", "namespace", "labels", "annotations")
    return kubectl.apply(dict(live, metadata={k: v for k, v in live["metadata"].items() if k in keep}))


def test_a_break_glass_token_admits_the_frozen_rollout_once_and_a_replay_is_denied(
    kubectl: Kubectl, governed: DeployguardServer, control_plane: LocalControlPlane,
    approver: tuple[Path, Path], namespace: str, tmp_path: Path,
) -> None:  # fmt: skip
    deployed(kubectl, namespace, V1)
    freeze_in_force(kubectl, namespace, freeze(namespace))
    denied = kubectl("set", "image", "deployment/web", f"web={V2}", "-n", namespace)
    assert denied.denied_by_deployguard, denied
    hashes = re.findall(r"--template-hash (sha256:[0-9a-f]{64})", denied.stderr)
    assert hashes, denied
    manifest = tmp_path / "web.yaml"
    live, token, signed_stderr = signed_rollout(kubectl, control_plane, approver, namespace, manifest, ticket="INC-42")
    assert f"(template {hashes[0]})" in signed_stderr, "the CLI hashes the manifest as the webhook hashes the request"

    admitted = kubectl("replace", "-f", str(manifest))

    assert admitted.ok, admitted
    assert "Warning: [break_glass_notice] BREAK-GLASS:" in admitted.stderr, admitted
    assert 'ticket "INC-42"' in admitted.stderr and 'approved by "oncall"' in admitted.stderr, admitted
    rolled_out(kubectl, namespace, V2)  # the controller's ReplicaSet and Pods pass too
    used = _token_uses(kubectl, token)
    assert [u["deployguard.io/break-glass-object"] for u in used] == [f"Deployment {namespace}/web"], (
        "recorded via the API"
    )
    expires = _claims(token)["exp"]
    assert used[0]["deployguard.io/break-glass-expires-at"] == (
        datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")
    ), "the record says when it may be swept"

    # Replay: the same approval on the same object and template, once more (deleted and created again).
    replayed = replay(kubectl, namespace, live)

    assert replayed.denied_by_deployguard, replayed
    assert "[break_glass]" in replayed.stderr and "already used" in replayed.stderr, replayed
    assert "single use" in replayed.stderr, replayed


def test_a_garbage_break_glass_token_is_denied_with_the_reason(
    kubectl: Kubectl, governed: DeployguardServer, namespace: str
) -> None:
    deployed(kubectl, namespace, V1)
    freeze_in_force(kubectl, namespace, freeze(namespace))

    result = kubectl("annotate", "deployment/web", "-n", namespace, f"{BREAK_GLASS}=garbage", "--dry-run=server")
    assert result.ok, result  # an annotation alone is metadata-only: no rollout to guard
    patch = {"metadata": {"annotations": {BREAK_GLASS: "not-a-token"}},
             "spec": {"template": {"spec": {"containers": [{"name": "web", "image": V2}]}}}}  # fmt: skip
    denied = kubectl("patch", "deployment/web", "-n", namespace, "--type=strategic", "-p", json.dumps(patch))

    assert denied.denied_by_deployguard, denied
    assert "[break_glass] the break-glass approval on" in denied.stderr, denied
    assert "not a compact JWS" in denied.stderr, denied


def test_a_malformed_freeze_is_refused_by_the_crd_schema(kubectl: Kubectl, governed: DeployguardServer,
                                                        namespace: str) -> None:  # fmt: skip
    no_reason = freeze(namespace, name="no-reason")
    del no_reason["spec"]["reason"]
    bad_clock = freeze(namespace, name="bad-clock", weekly=[{"days": ["Mon"], "from": "25:00", "to": "26:00"}])

    refused = kubectl.apply(no_reason)
    refused_clock = kubectl.apply(bad_clock)

    assert not refused.ok and "spec.reason: Required value" in refused.stderr, refused
    assert not refused_clock.ok and "spec.weekly[0].from" in refused_clock.stderr, refused_clock


def test_a_freeze_the_schema_admits_but_deployguard_cannot_use_is_reported_on_the_next_rollout(
    kubectl: Kubectl, governed: DeployguardServer, namespace: str
) -> None:
    deployed(kubectl, namespace, V1)
    broken = freeze(namespace, name="nowhere", timeZone="Mars/Olympus_Mons")
    applied = kubectl.apply(broken)
    assert applied.ok, applied

    def reported() -> KubectlResult | None:
        result = kubectl("set", "image", "deployment/web", f"web={V2}", "-n", namespace, "--dry-run=server")
        return result if "nowhere" in result.stderr else None

    warned = _until(
        reported,
        "deployguard to report the unusable ChangeFreeze",
    )

    assert warned.ok, warned  # it freezes nothing (it cannot be evaluated), and says so
    assert "Warning: [change_calendar] change calendar:" in warned.stderr, warned
    assert "Mars/Olympus_Mons" in warned.stderr, warned


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_rollout_undo_of_a_statefulset_or_daemonset_is_a_rollback_that_passes_a_freeze(
    kubectl: Kubectl, governed: DeployguardServer, namespace: str, kind: str
) -> None:
    obj = workload(kind, V1, namespace=namespace)
    if kind == "StatefulSet":
        obj["spec"]["serviceName"] = "web"
    created = kubectl.apply(obj)
    assert created.ok, created
    rolled = kubectl("set", "image", f"{kind.lower()}/web", f"web={V2}", "-n", namespace)
    assert rolled.ok, rolled
    _until(
        lambda: r if len(json.loads((r := kubectl("get", "controllerrevisions", "-n", namespace, "-o", "json"))
                                    .stdout)["items"]) >= 2 else None,
        f"two ControllerRevisions of the {kind}",
    )  # fmt: skip
    freeze_in_force_for(kubectl, namespace, freeze(namespace), f"{kind.lower()}/web")

    denied = kubectl("set", "image", f"{kind.lower()}/web", f"web={V3}", "-n", namespace)
    undone = kubectl("rollout", "undo", f"{kind.lower()}/web", "-n", namespace)

    assert denied.denied_by_deployguard and "[change_freeze]" in denied.stderr, denied
    assert undone.ok, undone
    records = [r for r in governed.decisions() if r.get("namespace") == namespace and r.get("kind") == kind]
    assert any(r.get("change_type") == "rollback" and r["allowed"] for r in records), records


def _claims(token: str) -> dict[str, Any]:
    """A break-glass token's claims (its JWS payload), unverified: for assertions only."""
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    return claims


def _token_uses(kubectl: Kubectl, token: str) -> list[dict[str, str]]:
    """The Leases that record a use of ``token`` (their annotations), read through the API server."""
    token_id = _claims(token)["jti"]
    leases = kubectl("get", "leases", "-n", WEBHOOK_NAMESPACE, "-o", "json")
    assert leases.ok, leases
    return [
        lease["metadata"]["annotations"]
        for lease in json.loads(leases.stdout)["items"]
        if (lease["metadata"].get("annotations") or {}).get("deployguard.io/break-glass-token-id") == token_id
    ]


def test_a_break_glass_token_on_a_change_denied_for_another_reason_is_not_used_up(
    kubectl: Kubectl, governed: DeployguardServer, control_plane: LocalControlPlane,
    approver: tuple[Path, Path], namespace: str, tmp_path: Path,
) -> None:  # fmt: skip
    """Break-glass passes freezes, never registry rules; a denied change leaves the approval unused.

    The same change (same pod template, so the same token) is first denied because the
    platform team's allowed_registries lost docker.io, then admitted once the policy
    data is fixed, and only that admission uses the token up."""
    deployed(kubectl, namespace, V1)
    freeze_in_force(kubectl, namespace, freeze(namespace))
    manifest = tmp_path / "web.yaml"
    live, token, _ = signed_rollout(kubectl, control_plane, approver, namespace, manifest, ticket="INC-43")
    data = governed.extra_config["policy"]["directory"] + "/data.yaml"
    original = Path(data).read_text()
    assert "        - docker.io\n" in original
    Path(data).write_text(original.replace("        - docker.io\n", "", 1))
    try:
        _until(
            lambda: (
                r
                if "[allowed_registries]" in (r := kubectl("replace", "-f", str(manifest), "--dry-run=server")).stderr
                else None
            ),
            "deployguard to load allowed_registries without docker.io",
        )

        denied = kubectl("replace", "-f", str(manifest))

        assert denied.denied_by_deployguard and "[allowed_registries]" in denied.stderr, denied
        assert "[break_glass]" not in denied.stderr and "[change_freeze]" not in denied.stderr, denied
        assert _token_uses(kubectl, token) == [], "a denied change must not use the approval up"
    finally:
        Path(data).write_text(original)
    _until(
        lambda: r if (r := kubectl("replace", "-f", str(manifest), "--dry-run=server")).ok else None,
        "deployguard to load the fixed allowed_registries",
    )
    assert _token_uses(kubectl, token) == [], "a dry run does not use the approval up"

    admitted = kubectl("replace", "-f", str(manifest))

    assert admitted.ok, admitted
    assert "Warning: [break_glass_notice] BREAK-GLASS:" in admitted.stderr and 'ticket "INC-43"' in admitted.stderr
    assert [u["deployguard.io/break-glass-object"] for u in _token_uses(kubectl, token)] == [
        f"Deployment {namespace}/web"
    ]
    replayed = replay(kubectl, namespace, live)

    assert replayed.denied_by_deployguard, replayed
    assert "[break_glass]" in replayed.stderr and "already used" in replayed.stderr, replayed


# The policy of a second validating webhook that refuses whatever it is sent (its
# registration only sends it objects labelled e2e-refuse: "yes").
REFUSER_POLICY = """package deployguard

import rego.v1

decision := {"deny": [{"rule": "refuse", "message": "refused by a second webhook", "fix": "drop the label"}],
             "warn": [], "dryrun": []}
"""


@pytest.fixture
def refuser(control_plane: LocalControlPlane, tmp_path: Path) -> Iterator[DeployguardServer]:
    """Another validating webhook, registered beside deployguard: the API server calls both in parallel."""
    policies = tmp_path / "refuser-policies"
    policies.mkdir()
    (policies / "refuse.rego").write_text(REFUSER_POLICY)
    server = DeployguardServer(control_plane.tools.deployguard, tmp_path, tmp_path / "logs", name="refuser",
                               extra_config={"policy": {"directory": str(policies)}})  # fmt: skip
    server.start()
    try:
        server.wait_ready()
        argv = [*control_plane.tools.deployguard, "render", "webhook-config", "--url", server.url, "--ca-file",
                str(server.ca_file), "--namespace", WEBHOOK_NAMESPACE, "--name", "e2e-refuser"]  # fmt: skip
        rendered = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
        manifest = yaml.safe_load(rendered)
        for hook in manifest["webhooks"]:
            hook["objectSelector"] = {"matchLabels": {"e2e-refuse": "yes"}}
        applied = control_plane.kubectl.apply(manifest)
        assert applied.ok, applied
        yield server
    finally:
        control_plane.kubectl("delete", "validatingwebhookconfiguration", "e2e-refuser", "--ignore-not-found")
        server.stop()


def test_a_break_glass_update_refused_by_another_webhook_can_be_tried_again_with_the_same_token(
    kubectl: Kubectl, governed: DeployguardServer, refuser: DeployguardServer, control_plane: LocalControlPlane,
    approver: tuple[Path, Path], namespace: str, tmp_path: Path,
) -> None:  # fmt: skip
    """deployguard admits the frozen rollout and records the token's use, but the other webhook
    refuses it, so nothing is stored. The same update again (the object is still at the version
    the use recorded) is admitted with the same token; a replay after that is not."""
    deployed(kubectl, namespace, V1)
    freeze_in_force(kubectl, namespace, freeze(namespace))
    manifest = tmp_path / "web.yaml"
    live, token, _ = signed_rollout(kubectl, control_plane, approver, namespace, manifest, ticket="INC-44")
    version = live["metadata"]["resourceVersion"]
    labelled = dict(live, metadata={**live["metadata"], "labels": {**live["metadata"].get("labels", {}),
                                                                     "e2e-refuse": "yes"}})  # fmt: skip
    refused_manifest = tmp_path / "web-refused.yaml"
    refused_manifest.write_text(yaml.safe_dump(labelled))

    refused = _until(
        lambda: r if "refused by a second webhook" in (r := kubectl("replace", "-f", str(refused_manifest))).stderr
        else None,
        "the second webhook to refuse the labelled rollout",
    )

    assert not refused.ok and "[refuse]" in refused.stderr, refused
    uses = _token_uses(kubectl, token)
    assert [u["deployguard.io/break-glass-from-resource-version"] for u in uses] == [version], (
        "deployguard admitted it and recorded the use, from the object's version"
    )
    assert deployment(kubectl, namespace)["metadata"]["resourceVersion"] == version, "nothing was stored"

    admitted = kubectl("replace", "-f", str(manifest))

    assert admitted.ok, admitted
    assert "Warning: [break_glass_notice] BREAK-GLASS:" in admitted.stderr and 'ticket "INC-44"' in admitted.stderr
    rolled_out(kubectl, namespace, V2)
    assert len(_token_uses(kubectl, token)) == 1
    replayed = replay(kubectl, namespace, live)

    assert replayed.denied_by_deployguard, replayed
    assert "[break_glass]" in replayed.stderr and "already used" in replayed.stderr, replayed


async def test_the_ledger_sweep_deletes_records_of_expired_tokens_only(control_plane: LocalControlPlane) -> None:
    """Through the real API server: list by label, delete with a resourceVersion precondition."""
    now = datetime.now(UTC)
    kube = KubeApi.from_kubeconfig(control_plane.kubeconfig)
    ledger = BreakGlassLedger(kube, WEBHOOK_NAMESPACE, clock=lambda: now)
    stamp = f"{time.time_ns()}"
    expired, current = f"sweep-expired-{stamp}", f"sweep-current-{stamp}"
    iso = "%Y-%m-%dT%H:%M:%SZ"
    await ledger.record(expired, "uid-1", "Deployment shop/a", (now - timedelta(hours=2)).strftime(iso))
    await ledger.record(current, "uid-2", "Deployment shop/b", (now + timedelta(minutes=30)).strftime(iso))

    deleted = await ledger.sweep(keep_after_expiry=timedelta(hours=1), max_ttl=timedelta(hours=4))

    assert deleted >= 1
    assert await ledger.use_of(expired) is None
    kept = await ledger.use_of(current)
    assert kept is not None and kept.request_uid == "uid-2"
    # A replay of the still-valid token is still caught after the sweep.
    with pytest.raises(BreakGlassError, match="already used"):
        await ledger.record(current, "uid-3", "Deployment shop/b")
    await kube.aclose()


def test_a_namespace_marked_critical_raises_the_risk_of_its_workloads_whatever_they_say(
    kubectl: Kubectl, governed: DeployguardServer, namespace: str
) -> None:
    calm = workload("Deployment", V1, namespace=namespace)
    created = kubectl.apply(calm)
    assert created.ok and "[risk_notice]" not in created.stderr, created  # off-hours alone stays below warn (30)

    labelled = kubectl("label", "namespace", namespace, "deployguard.io/criticality=critical")
    assert labelled.ok, labelled
    sneaky = workload("Deployment", V1, name="api", namespace=namespace)
    sneaky["metadata"]["labels"] = {"app": "api", "deployguard.io/criticality": "low"}  # it tries to talk itself down

    def warned() -> KubectlResult | None:  # namespace labels are cached (1 s here)
        sneaky["metadata"]["name"] = f"api-{time.monotonic_ns()}"
        result = kubectl.apply(sneaky)
        assert result.ok, result
        return result if "[risk_notice]" in result.stderr else None

    result = _until(warned, "the namespace's criticality to reach the risk score")
    assert "criticality critical" in result.stderr, result
