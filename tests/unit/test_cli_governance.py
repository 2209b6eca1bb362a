"""``deployguard break-glass keygen|sign|verify`` and ``deployguard budget status`` (webhook/cli_governance.py)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from typer.testing import CliRunner

from tests import factories
from webhook.admission import parse_review
from webhook.cli import app
from webhook.cli_governance import budget_rows, explain_token, parse_ttl
from webhook.config import BreakGlassSettings
from webhook.facts.break_glass import BreakGlassGatherer
from webhook.policy_input import Subject
from webhook.workloads import ChangeType, WorkloadKinds

runner = CliRunner()


def _keygen(directory: Path, name: str) -> tuple[Path, Path]:
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    result = runner.invoke(app, ["break-glass", "keygen", "--private", str(private), "--public", str(public)])
    assert result.exit_code == 0, result.output
    return private, public


def _config(directory: Path, keys: dict[str, Path], required: int = 1) -> Path:
    path = directory / "deployguard.yaml"
    path.write_text(yaml.safe_dump({"break_glass": {"public_keys": {k: str(v) for k, v in keys.items()},
                                                    "required_approvals": required}}))  # fmt: skip
    return path


def _manifest(directory: Path) -> tuple[Path, dict[str, object]]:
    obj = factories.workload("Deployment", factories.PINNED, namespace="shop")
    path = directory / "web.yaml"
    path.write_text(yaml.safe_dump(obj))
    return path, obj


def _sign(key: Path, key_id: str, *args: str) -> str:
    result = runner.invoke(app, ["break-glass", "sign", "--key", str(key), "--key-id", key_id, *args])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


async def test_sign_from_a_manifest_binds_the_hash_the_webhook_computes(tmp_path: Path) -> None:
    private, public = _keygen(tmp_path, "oncall")
    manifest, obj = _manifest(tmp_path)
    token = _sign(private, "oncall", "--file", str(manifest), "--reason", "outage", "--ticket", "INC-1")

    # The webhook's break-glass fact for the same object, sent as an UPDATE that changed the template.
    old = copy.deepcopy(obj)
    old["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx@sha256:" + "0" * 64  # type: ignore[index]
    annotated = copy.deepcopy(obj)
    annotated["metadata"]["annotations"] = {"deployguard.io/break-glass": token}  # type: ignore[index]
    request = parse_review(factories.admission_review(annotated, operation="UPDATE", old=old))
    template = WorkloadKinds.with_custom().pod_template("apps", "Deployment", annotated)
    key = load_pem_public_key(public.read_bytes())
    gatherer = BreakGlassGatherer(BreakGlassSettings(), {"oncall": key}, kube=None)  # type: ignore[dict-item]
    fact = await gatherer.gather(Subject(request=request, change=ChangeType.ROLLOUT, template=template))

    valid, lines = explain_token(token, {"oncall": key}, required=1, max_ttl_seconds=4 * 3600,  # type: ignore[dict-item]
                                 now=datetime.now(UTC))  # fmt: skip
    assert valid, lines
    assert f"pod template:  {fact['template_hash']}" in lines
    assert "object:        Deployment shop/web" in lines
    # No Kubernetes API here, so single use cannot be recorded: the fact says so rather than admitting.
    assert fact["valid"] is False and "single use cannot be enforced" in fact["error"]


def test_verify_explains_a_valid_token_and_exits_zero(tmp_path: Path) -> None:
    private, public = _keygen(tmp_path, "oncall")
    binding = ["--namespace", "shop", "--kind", "Deployment", "--name", "web", "--template-hash", "sha256:" + "a" * 64]
    token = _sign(private, "oncall", *binding, "--reason", "outage", "--ticket", "INC-1", "--ttl", "30m")

    result = runner.invoke(
        app, ["break-glass", "verify", token, "--config", str(_config(tmp_path, {"oncall": public}))]
    )

    assert result.exit_code == 0, result.output
    assert "VALID: signed by oncall (1 of 1 required)" in result.stdout
    assert "reason:        outage" in result.stdout and "ticket:        INC-1" in result.stdout


@pytest.mark.parametrize(
    ("token", "reason"),
    [("garbage", "not a break-glass token: the token is not a compact JWS"), ("", "the token is empty")],
)
def test_verify_refuses_garbage(tmp_path: Path, token: str, reason: str) -> None:
    result = runner.invoke(app, ["break-glass", "verify", token])
    assert result.exit_code == 1 and reason in result.stdout, result.output


def test_verify_names_a_bad_signature_and_an_unknown_key(tmp_path: Path) -> None:
    private, _ = _keygen(tmp_path, "mallory")
    _, public = _keygen(tmp_path, "oncall")
    args = ["--namespace", "shop", "--kind", "Deployment", "--name", "web", "--template-hash", "sha256:x",
            "--reason", "r", "--ticket", "t"]  # fmt: skip
    forged = _sign(private, "oncall", *args)  # claims to be oncall, signed by another key
    unknown = _sign(private, "mallory", *args)
    config = str(_config(tmp_path, {"oncall": public}))

    forged_result = runner.invoke(app, ["break-glass", "verify", forged, "--config", config])
    unknown_result = runner.invoke(app, ["break-glass", "verify", unknown, "--config", config])

    assert forged_result.exit_code == 1
    assert "INVALID: the signature of approver oncall does not verify" in forged_result.stdout
    assert unknown_result.exit_code == 1
    assert (
        "INVALID: the token is signed with key id mallory, which is not a configured approver" in unknown_result.stdout
    )


def test_k_of_n_needs_every_co_signature_and_an_expired_token_says_when(tmp_path: Path) -> None:
    first, first_pub = _keygen(tmp_path, "alice")
    second, second_pub = _keygen(tmp_path, "bob")
    one = _sign(first, "alice", "--namespace", "shop", "--kind", "Deployment", "--name", "web",
                "--template-hash", "sha256:x", "--reason", "r", "--ticket", "t", "--ttl", "1h")  # fmt: skip
    both = _sign(second, "bob", "--co-sign", one)
    keys = {k: load_pem_public_key(p.read_bytes()) for k, p in (("alice", first_pub), ("bob", second_pub))}
    now = datetime.now(UTC)

    alone = explain_token(one, keys, required=2, max_ttl_seconds=7200, now=now)  # type: ignore[arg-type]
    together = explain_token(both, keys, required=2, max_ttl_seconds=7200, now=now)  # type: ignore[arg-type]
    later = explain_token(both, keys, required=2, max_ttl_seconds=7200, now=now + timedelta(hours=2))  # type: ignore[arg-type]

    assert not alone[0] and "INVALID: 1 of the required 2 approvers signed (alice)" in alone[1]
    assert together[0] and any(line.startswith("VALID: signed by alice, bob (2 of 2") for line in together[1])
    assert not later[0] and any(line.startswith("INVALID: the token expired at ") for line in later[1])


def test_sign_refuses_missing_binding_reason_and_non_workloads(tmp_path: Path) -> None:
    private, _ = _keygen(tmp_path, "oncall")
    configmap = tmp_path / "cm.yaml"
    configmap.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
    base = ["break-glass", "sign", "--key", str(private), "--key-id", "oncall"]

    no_reason = runner.invoke(app, [*base, "--namespace", "shop", "--kind", "Deployment", "--name", "web"])
    no_binding = runner.invoke(app, [*base, "--reason", "r", "--ticket", "t", "--kind", "Deployment"])
    not_workload = runner.invoke(app, [*base, "--reason", "r", "--ticket", "t", "--file", str(configmap)])

    assert no_reason.exit_code == 2 and "--reason and --ticket are required" in no_reason.output
    assert no_binding.exit_code == 2 and "missing namespace, name, template_hash" in no_binding.output
    assert not_workload.exit_code == 2 and "ConfigMap has no pod template" in not_workload.output


def test_keygen_never_overwrites_a_private_key(tmp_path: Path) -> None:
    private, public = _keygen(tmp_path, "oncall")
    before = private.read_bytes()
    result = runner.invoke(app, ["break-glass", "keygen", "--private", str(private), "--public", str(public)])
    assert result.exit_code == 2 and "not overwriting" in result.output and private.read_bytes() == before


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400)])
def test_ttl_durations(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


def test_budget_rows_show_budget_burn_and_unknown() -> None:
    facts: list[dict[str, Any]] = [
        {"name": "web", "status": "ok", "objective": "99.9%", "window": "30d", "budget_remaining": "42.0%",
         "burn_rates_text": {"5m": "14.4x", "1h": "2x"}},
        {"name": "api", "status": "unknown", "error": "Prometheus unreachable"},
    ]  # fmt: skip
    assert budget_rows(facts) == [
        "web: objective 99.9% over 30d, budget remaining 42.0%, burn rates 5m 14.4x, 1h 2x",
        "api: UNKNOWN (Prometheus unreachable)",
    ]


def test_budget_status_without_budgets_configured_says_what_to_set() -> None:
    result = runner.invoke(app, ["budget", "status"])
    assert result.exit_code == 2 and "set budgets.prometheus_url and budgets.slo_file" in result.output
