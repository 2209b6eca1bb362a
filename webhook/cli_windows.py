"""``deployguard windows status``: the change windows and freezes in force, as the webhook sees them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from webhook.config import load_settings
from webhook.errors import DeployguardError
from webhook.facts.windows import merged_snapshot
from webhook.governance.calendar_sources import CalendarSource, FileSource, Snapshot
from webhook.governance.change_calendar import evaluate, floor_minute, human_text, intervals, local_text
from webhook.policy_bundle import default_policy_dir

windows_app = typer.Typer(help="Change windows and freezes.", no_args_is_help=True)


def _instant(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time, e.g. 2026-12-24T18:00+01:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def status_rows(snapshot: Snapshot, now: datetime, namespace: str | None) -> list[dict[str, Any]]:
    """One row per definition that concerns ``namespace`` (all without one). Pure."""
    rows = []
    for entry in snapshot.entries:
        if namespace is not None and not entry.applies_to(namespace, {}) and not entry.match_labels:
            continue
        tz = ZoneInfo(entry.zone)
        spans = intervals(entry, now, now + _HORIZON)
        current = next((i for i in spans if i.contains(now)), None)
        upcoming = next((i for i in spans if i.start > now), None)
        rows.append(
            {
                "kind": entry.kind,
                "name": entry.name,
                "namespace": entry.namespace,
                "effect": entry.effect,
                "reason": entry.reason,
                "declared_by": entry.declared_by,
                "ticket": entry.ticket,
                "zone": entry.zone,
                "change_types": list(entry.change_types),
                "in_force": current is not None,
                "occasion": current.label if current else "",
                "until": local_text(current.end, tz) if current else "",
                "next_start": local_text(upcoming.start, tz) if upcoming else "",
                "source": entry.source,
            }
        )
    return rows


_HORIZON = timedelta(days=92)


@windows_app.command("status")
def windows_status(
    at: Annotated[str | None, typer.Option("--at", help="instant (ISO 8601); default now")] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="only what concerns this namespace")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text | json")] = "text",
    zone: Annotated[list[str] | None, typer.Option("--zone", help="also show the next opening in this zone")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="settings YAML")] = None,
    policies: Annotated[Path | None, typer.Option("--policies", help="policy directory")] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="read ChangeFreeze/ChangeWindow objects from this cluster")
    ] = None,
) -> None:
    """The windows and freezes in force at an instant, and when deploys open next, per zone."""
    if output not in ("text", "json"):
        raise typer.BadParameter("--output must be text or json")
    try:
        settings = load_settings(config)
    except DeployguardError as exc:
        typer.echo(f"deployguard: {exc}", err=True)
        raise typer.Exit(2) from None
    now = floor_minute(_instant(at))
    policy_dir = policies or settings.policy.directory or default_policy_dir()
    sources: list[CalendarSource] = [FileSource(settings.windows.files, optional=[policy_dir / "change-windows.yaml"])]
    snapshot = merged_snapshot(sources)
    if kubeconfig is not None or settings.windows.watch_kubernetes:
        from webhook.governance.kube_calendar import KubeCalendarSource

        kube = KubeCalendarSource(kubeconfig or settings.kube_api.kubeconfig)
        try:
            listed = kube.list_once()
        except Exception as exc:  # no kubeconfig, no in-cluster credentials
            listed = Snapshot(problems=(_problem(f"cannot reach the Kubernetes API: {exc}"),))
        snapshot = Snapshot(snapshot.entries + listed.entries, snapshot.problems + listed.problems)
    rows = status_rows(snapshot, now, namespace)
    zones = list(dict.fromkeys([*(zone or []), settings.change.default_time_zone]))
    verdict = evaluate(snapshot.entries, now=now, namespace=namespace or "", labels={}, change_type="rollout")
    opens = {z: local_text(verdict.opens_at, ZoneInfo(z)) for z in zones}
    problems = [p.message for p in snapshot.problems if namespace is None or p.namespace in ("", namespace)]
    blocked = bool(verdict.blocking) or not verdict.inside_allowed
    if output == "json":
        doc = {"at": now.isoformat(), "namespace": namespace, "rollouts_blocked": blocked, "opens_at": opens,
               "entries": rows, "problems": problems}  # fmt: skip
        typer.echo(json.dumps(doc, indent=2))
    else:
        typer.echo(f"at {now.isoformat(timespec='minutes')}" + (f", namespace {namespace}" if namespace else ""))
        for row in rows:
            state = (
                f"IN FORCE until {row['until'] or 'deleted'}" if row["in_force"] else f"next {row['next_start'] or '-'}"
            )
            name = f"{row['namespace']}/{row['name']}" if row["namespace"] else row["name"]
            typer.echo(
                f"  {row['kind']:<20} {name:<30} {row['effect']:<5} {state}  ({row['reason']}; {row['declared_by']})"
            )
        if not rows:
            typer.echo("  no change windows or freezes declared")
        when = ", ".join(f"{human_text(verdict.opens_at, ZoneInfo(z)) or 'unknown'}" for z in zones)
        typer.echo(f"rollouts: {'BLOCKED, open again ' + when if blocked else 'open'}")
        for problem in problems:
            typer.echo(f"problem: {problem}")
    raise typer.Exit(0)


def _problem(message: str) -> Any:
    from webhook.governance.calendar_sources import Problem

    return Problem("", message)
