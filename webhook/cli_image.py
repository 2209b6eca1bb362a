"""``deployguard image inspect``: what deployguard sees for one image reference.

The tool a developer runs when their image is denied: the parsed reference, the
digest the tag resolves to now, and per configured image policy and authority
whether the signature verifies and why not. Uses the same gatherer as the webhook.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from webhook.config import load_settings
from webhook.errors import DeployguardError
from webhook.facts.images import ImageFacts
from webhook.images import parse_image

image_app = typer.Typer(help="Image references, digests and signatures.", no_args_is_help=True)


async def inspect_image(reference: str, config: Path | None, timeout: float) -> dict[str, Any]:
    """The parsed reference plus, when the registry answers, digests and signature verdicts."""
    ref = parse_image(reference)
    report: dict[str, Any] = {"reference": reference, "parsed": ref.as_policy_input()}
    if not ref.valid:
        return report
    settings = load_settings(config).images
    facts = ImageFacts(replace(settings, tag_cache_ttl_seconds=0.0), budget_seconds=timeout)
    try:
        report["registry"] = (await facts.facts_for([reference]))[reference]
    finally:
        await facts.client.aclose()
    return report


def _text(report: dict[str, Any]) -> str:
    parsed = report["parsed"]
    lines = [f"reference:   {report['reference']}"]
    if not parsed["valid"]:
        lines.append(f"invalid:     {parsed['error']}")
        return "\n".join(lines)
    lines += [
        f"registry:    {parsed['registry']}",
        f"repository:  {parsed['repository']}",
        f"tag:         {parsed['tag'] or '-'}",
        f"digest:      {parsed['digest'] or '-'}",
        f"normalized:  {parsed['normalized']}",
    ]
    fact = report.get("registry") or {}
    if fact.get("status") != "ok":
        lines.append(f"registry:    could not ask the registry: {fact.get('error', '')}")
    if fact.get("resolved_digest"):
        lines.append(f"resolves to: {fact['resolved_digest']}  (pin it as {parsed['name']}@{fact['resolved_digest']})")
    if fact.get("tag_digest"):
        moved = " (MOVED: differs from the pinned digest)" if fact.get("tag_moved") else ""
        lines.append(f"tag now:     {fact['tag_digest']}{moved}")
    if fact.get("tag_error"):
        lines.append(f"tag check:   could not resolve the tag: {fact['tag_error']}")
    policies = fact.get("policies") or []
    if not policies:
        lines.append("signatures:  no image policy matches this image (see images.policies in the config)")
    for policy in policies:
        verified = len(policy["verified"])
        state = "OK" if verified >= policy["threshold"] else "NOT SATISFIED"
        name, mode, threshold = policy["name"], policy["mode"], policy["threshold"]
        lines.append(f"policy {name} ({mode}): {verified} of {threshold} required verified: {state}")
        for result in policy["results"]:
            verdict = "verified" if result["verified"] else f"not verified: {result['reason']}"
            lines.append(f"  {result['name']}: {verdict}")
    return "\n".join(lines)


@image_app.command("inspect")
def inspect(
    reference: Annotated[str, typer.Argument(help="an image reference as written in a pod spec")],
    config: Annotated[Path | None, typer.Option("--config", help="settings YAML (images section)")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text | json")] = "text",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the registry")] = 10.0,
) -> None:
    """Parse REF, resolve it and verify its signatures as the webhook would; exit 1 when invalid."""
    try:
        report = asyncio.run(inspect_image(reference, config, timeout))
    except DeployguardError as exc:
        typer.echo(f"deployguard: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(report, indent=2) if output == "json" else _text(report))
    if not report["parsed"]["valid"]:
        raise typer.Exit(1)
