"""`deployguard audit query` answers the three common questions on a generated log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from webhook.cli import app

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def record(n: int, time: str, *, allowed: bool, rules: tuple[str, ...] = (), digest: str = DIGEST_A,
           dry_run: bool = False, break_glass: dict[str, Any] | None = None,
           operation: str = "CREATE") -> dict[str, Any]:
    return {
        "time": time, "decision_id": f"id{n:04d}", "uid": f"u{n}", "user": "alice", "groups": ["devs"],
        "operation": operation, "kind": "Deployment", "namespace": "shop", "name": f"web-{n}", "dry_run": dry_run,
        "images": [{"container": "web", "image": f"shop/web@{digest}", "digest": digest, "verified_authorities": []}],
        "findings": [{"rule": r, "mode": "deny", "message": "m"} for r in rules],
        "break_glass": break_glass, "allowed": allowed, "policy_revision": "rev1",
    }


@pytest.fixture
def log(tmp_path: Path) -> Path:
    records = [
        record(1, "2026-03-01T09:00:00.000Z", allowed=False, rules=("digest_pinning",)),
        record(2, "2026-03-02T09:00:00.000Z", allowed=False, rules=("digest_pinning", "allowed_registries")),
        record(3, "2026-03-03T09:00:00.000Z", allowed=False, rules=("freeze",), dry_run=True),
        record(4, "2026-03-04T09:00:00.000Z", allowed=True, digest=DIGEST_B,
               break_glass={"verified": True, "ticket": "INC-42", "approvers": ["sre-lead"]}),
        record(5, "2026-03-05T09:00:00.000Z", allowed=True),
        record(6, "2026-03-06T09:00:00.000Z", allowed=True, dry_run=True),  # a dry run deploys nothing
        record(7, "2026-03-07T09:00:00.000Z", allowed=False, rules=("freeze",),
               break_glass={"verified": False, "error": "signature does not verify"}),
        record(8, "2026-03-08T09:00:00.000Z", allowed=True, operation="UPDATE"),
        # the mutating webhook's record of a rewrite: the validating webhook's record says what was admitted
        {"time": "2026-03-08T09:00:00.000Z", "decision_id": "id0009", "webhook": "mutate", "operation": "CREATE",
         "kind": "Deployment", "namespace": "shop", "name": "web-9", "dry_run": False, "allowed": True,
         "outcome": "mutated", "patched": [{"path": "/spec/template/spec/containers/0/image", "from": "shop/web:1",
                                            "to": f"shop/web:1@{DIGEST_A}"}]},
    ]
    path = tmp_path / "decisions.jsonl"
    lines = [json.dumps(r) for r in records]
    lines.insert(3, "2026-03-03 INFO some other log line on stdout")  # skipped, not an error
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*args: str) -> Any:
    result = CliRunner().invoke(app, ["audit", "query", *args, "-o", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_denials_by_rule_over_a_period(log: Path) -> None:
    assert run(str(log), "--denials-by-rule") == {
        "denials_by_rule": {"digest_pinning": 2, "freeze": 2, "allowed_registries": 1}, "denials": 4,
    }
    in_period = run(str(log), "--denials-by-rule", "--since", "2026-03-02", "--until", "2026-03-07T00:00:00Z")
    assert in_period == {"denials_by_rule": {"digest_pinning": 1, "allowed_registries": 1, "freeze": 1}, "denials": 2}


def test_everything_that_went_through_break_glass(log: Path) -> None:
    found = run(str(log), "--break-glass")["records"]
    assert [r["decision_id"] for r in found] == ["id0004", "id0007"]


def test_all_deploys_of_an_image_digest(log: Path) -> None:
    found = run(str(log), "--digest", DIGEST_A)["records"]
    assert [r["decision_id"] for r in found] == ["id0005", "id0008"]
    assert [r["decision_id"] for r in run(str(log), "--digest", f"shop/web@{DIGEST_B}")["records"]] == ["id0004"]


def test_text_output_names_who_what_and_the_decision_id(log: Path) -> None:
    result = CliRunner().invoke(app, ["audit", "query", str(log), "--break-glass"])
    assert result.exit_code == 0
    assert "alice  CREATE Deployment shop/web-4  allowed  decision id0004" in result.output
    assert result.output.strip().endswith("2 record(s)")


def test_a_question_must_be_chosen_and_times_must_parse(log: Path) -> None:
    assert CliRunner().invoke(app, ["audit", "query", str(log)]).exit_code == 2
    bad = CliRunner().invoke(app, ["audit", "query", str(log), "--denials-by-rule", "--since", "last tuesday"])
    assert bad.exit_code == 2 and "neither an ISO time" in bad.output
