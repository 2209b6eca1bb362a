"""``deployguard break-glass …`` and ``deployguard budget status``: change governance for people.

Approvers issue and explain break-glass tokens (webhook/governance/break_glass.py) here; SREs see
each SLO's error budget as the webhook sees it (webhook/facts/budgets.py). The work is
in pure helpers (``claims_for_manifest``, ``explain_token``, ``budget_rows``); the
commands only read files, call them and print.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from webhook.check import ManifestError, read_manifests
from webhook.config import Settings, load_settings
from webhook.errors import DeployguardError
from webhook.governance.break_glass import BreakGlassError, decode, new_claims, sign, template_hash, verify
from webhook.workloads import WorkloadKinds

break_glass_app = typer.Typer(help="Signed, expiring break-glass approvals.", no_args_is_help=True)
budget_app = typer.Typer(help="SLO error budgets.", no_args_is_help=True)

_TTL = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"deployguard: {message}", err=True)
    return typer.Exit(code)


def parse_ttl(text: str) -> int:
    """``90``, ``30m``, ``2h``, ``1h30m`` → seconds; anything else is a usage error."""
    if text.isdigit():
        return int(text)
    match = _TTL.match(text)
    if not text or match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 2h or 1h30m")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def manifest_binding(obj: Mapping[str, Any], kinds: WorkloadKinds | None = None) -> dict[str, str]:
    """namespace, kind, name and template hash of a workload manifest, as the webhook computes them.

    The hash covers the pod template exactly as the API server sends it, defaults
    included: sign a manifest taken from the cluster (``kubectl get -o yaml``, then
    edited) or copy the hash from deployguard's denial."""
    kinds = kinds or WorkloadKinds.with_custom()
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = str(obj.get("kind", ""))
    template = kinds.pod_template(group, kind, obj)
    if template is None:
        raise ManifestError(f"{kind or 'the object'} has no pod template deployguard knows (a workload is needed)")
    meta = obj.get("metadata") or {}
    return {
        "namespace": str(meta.get("namespace") or "default"),
        "kind": kind,
        "name": str(meta.get("name") or ""),
        "template_hash": template_hash(template),
    }


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise _fail(f"cannot load the private key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise _fail(f"{path} is not an Ed25519 private key (deployguard break-glass keygen makes one)")
    return key


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@break_glass_app.command("keygen")
def keygen(
    private: Annotated[Path, typer.Option("--private", help="write the approver's private key here (PEM, mode 600)")],
    public: Annotated[Path, typer.Option("--public", help="write the public key here (break_glass.public_keys)")],
) -> None:
    """Create an approver's Ed25519 key pair."""
    if private.exists():
        raise _fail(f"{private} exists; not overwriting a private key")
    key = Ed25519PrivateKey.generate()
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    typer.echo(f"wrote {private} (keep it secret) and {public} (add it to break_glass.public_keys)", err=True)


@break_glass_app.command("sign")
def sign_command(
    key: Annotated[Path, typer.Option("--key", help="your Ed25519 private key (PEM)")],
    key_id: Annotated[str, typer.Option("--key-id", help="your key's id in break_glass.public_keys")],
    reason: Annotated[str, typer.Option("--reason", help="why the change must go now")] = "",
    ticket: Annotated[str, typer.Option("--ticket", help="incident or change ticket")] = "",
    ttl: Annotated[str, typer.Option("--ttl", help="how long the token is valid: 30m, 2h, 1h30m")] = "1h",
    file: Annotated[
        Path | None, typer.Option("-f", "--file", help="the workload manifest as it will be sent (binding and hash)")
    ] = None,
    namespace: Annotated[str, typer.Option(help="the object's namespace (instead of --file)")] = "",
    kind: Annotated[str, typer.Option(help="the object's kind, e.g. Deployment")] = "",
    name: Annotated[str, typer.Option(help="the object's name")] = "",
    template_hash_: Annotated[
        str, typer.Option("--template-hash", help="sha256:… of the new pod template (deployguard's denial shows it)")
    ] = "",
    co_sign: Annotated[
        str, typer.Option("--co-sign", help="another approver's token: sign the same claims (k-of-n)")
    ] = "",
) -> None:
    """Issue a break-glass token for one object and pod template; prints the annotation value.

    Put it on the workload: ``kubectl annotate deployment/web deployguard.io/break-glass=TOKEN``
    (in the same change as the new template, e.g. ``kubectl apply``)."""
    private = _load_private_key(key)
    if co_sign:
        try:
            first = co_sign.split()
            _, claims, _, _ = decode(first[0])
        except (BreakGlassError, IndexError) as exc:
            raise _fail(f"--co-sign: {exc or 'empty token'}") from None
        typer.echo(" ".join([*first, sign(claims, private, key_id)]))
        return
    if not reason or not ticket:
        raise _fail("--reason and --ticket are required: both are shown in every decision the token admits")
    binding = {"namespace": namespace, "kind": kind, "name": name, "template_hash": template_hash_}
    if file is not None:
        try:
            objects = read_manifests(file)
            if len(objects) != 1:
                raise ManifestError(f"{file} holds {len(objects)} objects; give exactly one workload")
            from_file = manifest_binding(objects[0])
        except ManifestError as exc:
            raise _fail(str(exc)) from None
        binding = {k: v or from_file[k] for k, v in binding.items()}
    missing = [k for k, v in binding.items() if not v]
    if missing:
        raise _fail(f"missing {', '.join(missing)}: give --file or --namespace/--kind/--name/--template-hash")
    seconds = parse_ttl(ttl)
    if seconds <= 0:
        raise _fail("--ttl must be positive")
    claims = new_claims(**binding, reason=reason, ticket=ticket, ttl_seconds=seconds, now=datetime.now(UTC))
    typer.echo(
        f"break-glass token {claims['jti']} for {binding['kind']} {binding['namespace']}/{binding['name']} "
        f"(template {binding['template_hash']}), valid until {_utc(claims['exp'])}",
        err=True,
    )
    typer.echo(sign(claims, private, key_id))


def explain_token(
    annotation: str, keys: Mapping[str, Ed25519PublicKey], *, required: int, max_ttl_seconds: int, now: datetime
) -> tuple[bool, list[str]]:
    """Whether the token is valid (signatures, expiry, lifetime, approvers) and lines saying why. Pure.

    The binding to an object cannot be checked without the object: the lines show it."""
    tokens = annotation.split()
    if not tokens:
        return False, ["the token is empty"]
    try:
        _, claims, _, _ = decode(tokens[0])
    except BreakGlassError as exc:
        return False, [f"not a break-glass token: {exc}"]
    lines = [
        f"token id:      {claims['jti']}",
        f"object:        {claims['kind']} {claims['namespace']}/{claims['name']}",
        f"pod template:  {claims['template_hash']}",
        f"reason:        {claims['reason']}",
        f"ticket:        {claims['ticket']}",
        f"issued:        {_utc(int(claims['iat']))}",
        f"expires:       {_utc(int(claims['exp']))}",
        f"signatures:    {len(tokens)}",
    ]
    try:
        approval = verify(
            annotation,
            keys=keys,
            required=required,
            namespace=str(claims["namespace"]),
            kind=str(claims["kind"]),
            name=str(claims["name"]),
            template_hash=str(claims["template_hash"]),
            now=now,
            max_ttl_seconds=max_ttl_seconds,
        )
    except BreakGlassError as exc:
        return False, [*lines, f"INVALID: {exc}"]
    left = int(claims["exp"]) - int(now.timestamp())
    return True, [
        *lines,
        f"VALID: signed by {', '.join(approval.approvers)} ({len(approval.approvers)} of {required} required), "
        f"expires in {left // 60} min; admits that object with that pod template once",
    ]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except DeployguardError as exc:
        raise _fail(str(exc)) from None


@break_glass_app.command("verify")
def verify_command(
    token: Annotated[str, typer.Argument(help="the annotation value (one or more tokens, space-separated)")],
    config: Annotated[Path | None, typer.Option("--config", help="settings YAML with break_glass.public_keys")] = None,
) -> None:
    """Explain a token: what it binds, who signed it, whether it is valid now. Exit 0 valid, 1 not."""
    from webhook.facts.break_glass import load_public_keys

    settings = _settings(config).break_glass
    try:
        keys = load_public_keys(settings)
    except DeployguardError as exc:
        raise _fail(str(exc)) from None
    valid, lines = explain_token(
        token, keys, required=settings.required_approvals, max_ttl_seconds=settings.max_ttl_seconds,
        now=datetime.now(UTC),
    )  # fmt: skip
    for line in lines:
        typer.echo(line)
    raise typer.Exit(0 if valid else 1)


def budget_rows(facts: list[dict[str, Any]]) -> list[str]:
    """One line per SLO fact (webhook/governance/slo.py budget_facts, or unknown with its error). Pure."""
    rows = []
    for fact in facts:
        if fact.get("status") != "ok":
            rows.append(f"{fact.get('name')}: UNKNOWN ({fact.get('error', '')})")
            continue
        burns = ", ".join(f"{w} {v}" for w, v in (fact.get("burn_rates_text") or {}).items())
        rows.append(
            f"{fact['name']}: objective {fact['objective']} over {fact['window']}, "
            f"budget remaining {fact['budget_remaining']}, burn rates {burns}"
        )
    return rows


@budget_app.command("status")
def budget_status(
    config: Annotated[Path | None, typer.Option("--config", help="settings YAML with the budgets section")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text | json")] = "text",
) -> None:
    """Each SLO's remaining error budget and burn rates, asked from Prometheus as the webhook asks."""
    from webhook.facts.budgets import BudgetReader
    from webhook.governance.prometheus import Prometheus
    from webhook.governance.slo import load_slos

    if output not in ("text", "json"):
        raise _fail("--output must be text or json")
    budgets = _settings(config).budgets
    if not budgets.prometheus_url or budgets.slo_file is None:
        raise _fail("no error budgets configured: set budgets.prometheus_url and budgets.slo_file (--config)")
    try:
        slos = load_slos(budgets.slo_file)
    except DeployguardError as exc:
        raise _fail(str(exc)) from None

    async def read() -> list[dict[str, Any]]:
        prometheus = Prometheus(budgets.prometheus_url, timeout=budgets.query_timeout_seconds)
        try:
            return await BudgetReader(slos, prometheus, ttl=0).read_all()
        finally:
            await prometheus.aclose()

    facts = asyncio.run(read())
    if output == "json":
        typer.echo(json.dumps(facts, indent=2))
    else:
        for row in budget_rows(facts) or ["no SLOs declared"]:
            typer.echo(row)
    raise typer.Exit(1 if any(f.get("status") != "ok" for f in facts) else 0)
