"""``deployguard audit query``: answer auditors' questions from decision logs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from webhook.observe.audit_query import (
    AuditQueryError,
    Period,
    denials_by_rule,
    deploys_of_digest,
    parse_when,
    read_records,
    summary_line,
    through_break_glass,
)

audit_app = typer.Typer(help="The decision audit trail.", no_args_is_help=True)


@audit_app.command("query")
def query(
    logs: Annotated[list[Path], typer.Argument(help="decision log file(s) (JSON lines)")],
    denials_by_rule_: Annotated[bool, typer.Option("--denials-by-rule", help="denials per rule")] = False,
    break_glass: Annotated[bool, typer.Option("--break-glass", help="everything that used break-glass")] = False,
    digest: Annotated[str, typer.Option("--digest", help="all deploys of this image digest (sha256:…)")] = "",
    since: Annotated[str, typer.Option(help="from (ISO time, or 24h / 7d ago)")] = "",
    until: Annotated[str, typer.Option(help="until (ISO time, or 1h ago), exclusive")] = "",
    output: Annotated[str, typer.Option("--output", "-o", help="text | json")] = "text",
) -> None:
    """Denials by rule over a period, break-glass use, or every deploy of an image digest."""
    chosen = [denials_by_rule_, break_glass, bool(digest)]
    if sum(chosen) != 1:
        typer.echo("deployguard: choose exactly one of --denials-by-rule, --break-glass, --digest", err=True)
        raise typer.Exit(2)
    if output not in ("text", "json"):
        typer.echo("deployguard: --output must be text or json", err=True)
        raise typer.Exit(2)
    now = datetime.now(UTC)
    try:
        period = Period(parse_when(since, now) if since else None, parse_when(until, now) if until else None)
        records = list(read_records(logs))
    except AuditQueryError as exc:
        typer.echo(f"deployguard: {exc}", err=True)
        raise typer.Exit(2) from None
    result: dict[str, Any]
    if denials_by_rule_:
        counts, denied = denials_by_rule(records, period)
        result = {"denials_by_rule": dict(counts.most_common()), "denials": len(denied)}
        lines = [f"{count:6d}  {rule}" for rule, count in counts.most_common()]
        lines.append(f"{len(denied)} denied request(s)")
    else:
        found = through_break_glass(records, period) if break_glass else deploys_of_digest(records, digest, period)
        result = {"records": found}
        lines = [summary_line(r) for r in found] + [f"{len(found)} record(s)"]
    if output == "json":
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo("\n".join(lines))
