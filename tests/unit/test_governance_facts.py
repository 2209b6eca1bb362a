"""SLO validation, budget arithmetic, break-glass tokens and change facts (pure parts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from webhook.config import ChangeSettings
from webhook.errors import ConfigError
from webhook.governance.break_glass import BreakGlassError, new_claims, sign, template_hash, verify
from webhook.governance.change_facts import local_time_facts, major_version
from webhook.governance.slo import budget_facts, parse_slos
from webhook.workloads import PodTemplate

GOOD = {
    "name": "web",
    "selector": {"namespace": "shop"},
    "objective": 0.99,
    "window": "30d",
    "error_ratio_query": "sum(rate(e[{{window}}])) / sum(rate(r[{{window}}]))",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"objective": 99.9}, "objective must be a number between 0 and 1"),
        ({"window": "a month"}, "window must be a Prometheus duration"),
        ({"selector": {}}, "needs a selector"),
        ({"error_ratio_query": "sum(rate(e[5m]))"}, "has no {{window}} placeholder"),
        ({"good_query": "g[{{window}}]"}, "give either error_ratio_query, or both"),
        ({"burn_alerts": [{"long": "2h", "short": "5m", "factor": 14.4}]}, "must be listed in burn_windows"),
        ({"colour": "red"}, "unknown key(s) ['colour']"),
    ],
)
def test_malformed_slo_is_rejected_with_a_clear_error(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="slos\\[0\\]") as info:
        parse_slos({"slos": [{**GOOD, **change}]})
    assert message in str(info.value)


def test_duplicate_slo_names_are_rejected() -> None:
    with pytest.raises(ConfigError, match="duplicate SLO name"):
        parse_slos({"slos": [GOOD, GOOD]})


def test_budget_arithmetic() -> None:
    (slo,) = parse_slos({"slos": [GOOD]})
    fact = budget_facts(slo, {"30d": 0.005, "5m": 0.2, "30m": 0.01, "1h": 0.15, "6h": None})
    assert fact["budget_remaining_percent"] == 50.0
    assert fact["burn_rates"] == {"5m": 20.0, "30m": 1.0, "1h": 15.0, "6h": 0.0}
    assert fact["objective"] == "99%"


KEY = Ed25519PrivateKey.generate()
TEMPLATE = PodTemplate(labels={"app": "web"}, annotations={}, spec={"containers": [{"name": "web", "image": "x"}]})
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def _token(key: Ed25519PrivateKey = KEY, kid: str = "alice", **over: object) -> str:
    claims = new_claims(
        namespace="shop", kind="Deployment", name="web", template_hash=template_hash(TEMPLATE),
        reason="hotfix", ticket="INC-1", ttl_seconds=3600, now=NOW,
    )  # fmt: skip
    claims.update(over)
    return sign(claims, key, kid)


def _verify(annotation: str, required: int = 1, now: datetime = NOW) -> object:
    return verify(
        annotation, keys={"alice": KEY.public_key(), "bob": BOB.public_key()}, required=required,
        namespace="shop", kind="Deployment", name="web", template_hash=template_hash(TEMPLATE), now=now,
        max_ttl_seconds=4 * 3600,
    )  # fmt: skip


BOB = Ed25519PrivateKey.generate()


def test_valid_token_verifies() -> None:
    approval = _verify(_token())
    assert approval.approvers == ("alice",)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("annotation", "reason"),
    [
        ("garbage", "not a compact JWS"),
        ("a.b.c", "not valid base64url JSON"),
        (_token(key=Ed25519PrivateKey.generate()), "does not verify"),
        (_token(kid="mallory"), "not a configured approver"),
        (_token(name="api"), "for another object: name is api"),
        (_token(template_hash="sha256:00"), "for another pod template"),
        (_token(exp=int(NOW.timestamp()) - 1, iat=int(NOW.timestamp()) - 60), "expired at"),
        (_token(exp=int(NOW.timestamp()) + 86400), "longer than the allowed"),
    ],
)
def test_bad_tokens_are_refused_with_the_reason(annotation: str, reason: str) -> None:
    with pytest.raises(BreakGlassError, match=reason):
        _verify(annotation)


def test_k_of_n_needs_distinct_approvers() -> None:
    claims_token = _token()
    with pytest.raises(BreakGlassError, match="1 of the required 2"):
        _verify(f"{claims_token} {claims_token}", required=2)
    _, payload, _ = claims_token.split(".")
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    both = f"{sign(claims, KEY, 'alice')} {sign(claims, BOB, 'bob')}"
    assert _verify(both, required=2).approvers == ("alice", "bob")  # type: ignore[attr-defined]


def test_expiry_is_checked_against_the_clock() -> None:
    with pytest.raises(BreakGlassError, match="expired"):
        _verify(_token(), now=NOW + timedelta(hours=2))


def test_major_version() -> None:
    assert major_version("1.4.2") == 1 and major_version("v2") == 2 and major_version("latest") is None


@pytest.mark.parametrize(
    ("utc", "zone", "hour", "off"),
    [
        # Europe/Berlin leaves summer time on 2026-10-25 at 03:00 CEST -> 02:00 CET.
        (datetime(2026, 10, 23, 8, 30, tzinfo=UTC), "Europe/Berlin", 10, False),  # Fri, CEST (UTC+2)
        (datetime(2026, 10, 26, 8, 30, tzinfo=UTC), "Europe/Berlin", 9, False),  # Mon, CET (UTC+1)
        # America/New_York enters summer time on 2026-03-08.
        (datetime(2026, 3, 6, 13, 30, tzinfo=UTC), "America/New_York", 8, True),  # Fri, EST: before 9
        (datetime(2026, 3, 9, 13, 30, tzinfo=UTC), "America/New_York", 9, False),  # Mon, EDT
        (datetime(2026, 3, 8, 15, 0, tzinfo=UTC), "America/New_York", 11, True),  # Sunday
    ],
)
def test_off_hours_in_the_team_zone_across_dst(utc: datetime, zone: str, hour: int, off: bool) -> None:
    facts = local_time_facts(utc, zone, ChangeSettings())
    assert (facts["hour"], facts["off_hours"], facts["zone"]) == (hour, off, zone)
