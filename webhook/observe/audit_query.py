"""Answer auditors' questions from decision log files. Pure apart from reading the files.

The three common questions: denials by rule over a period; everything that went
through break-glass; every deploy of an image digest. Lines that are not decision
records (other log output interleaved on stdout) are skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from webhook.errors import DeployguardError


class AuditQueryError(DeployguardError):
    """A query that cannot be run (unreadable log, bad time)."""


_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, now: datetime) -> datetime:
    """ISO 8601 (``2026-03-01``, ``2026-03-01T10:00:00Z``) or relative to now (``90m``, ``24h``, ``7d``)."""
    match = _RELATIVE.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AuditQueryError(f"{text!r} is neither an ISO time (2026-03-01T10:00:00Z) nor like 24h / 7d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read_records(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Decision records from JSON-lines files, in file order."""
    for path in paths:
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise AuditQueryError(f"cannot read {path}: {exc.strerror}") from None
        with handle:
            for line in handle:
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(record, dict) and "decision_id" in record:
                    yield record


@dataclass(frozen=True)
class Period:
    since: datetime | None = None
    until: datetime | None = None

    def contains(self, record: dict[str, Any]) -> bool:
        try:
            when = datetime.fromisoformat(str(record.get("time", "")).replace("Z", "+00:00"))
        except ValueError:
            return False
        return (self.since is None or when >= self.since) and (self.until is None or when < self.until)


def denials_by_rule(records: Iterable[dict[str, Any]], period: Period) -> tuple[Counter[str], list[dict[str, Any]]]:
    """How often each rule denied (dry-run requests included), and the denied records."""
    counts: Counter[str] = Counter()
    denied = []
    for record in records:
        if record.get("allowed") is not False or not period.contains(record):
            continue
        denied.append(record)
        rules = {f.get("rule", "unnamed") for f in record.get("findings") or () if f.get("mode") == "deny"}
        for rule in rules or ({"(engine error)"} if record.get("error") else {"(none)"}):
            counts[rule] += 1
    return counts, denied


def through_break_glass(records: Iterable[dict[str, Any]], period: Period) -> list[dict[str, Any]]:
    """Every request that carried a break-glass claim (verified or not)."""
    return [r for r in records if r.get("break_glass") and period.contains(r)]


def deploys_of_digest(records: Iterable[dict[str, Any]], digest: str, period: Period) -> list[dict[str, Any]]:
    """Every admitted, non-dry-run create/update whose images include ``digest``."""
    digest = digest.split("@")[-1]
    found = []
    for record in records:
        if record.get("allowed") is not True or record.get("dry_run") or not period.contains(record):
            continue
        if record.get("operation") not in ("CREATE", "UPDATE"):
            continue
        if any(isinstance(i, dict) and i.get("digest") == digest for i in record.get("images") or ()):
            found.append(record)
    return found


def summary_line(record: dict[str, Any]) -> str:
    """One line per record for people: when, who, what, outcome, id."""
    subject = f"{record.get('kind')} {record.get('namespace')}/{record.get('name')}"
    allowed = record.get("allowed")
    verdict = "allowed" if allowed is True else "denied" if allowed is False else "rejected"
    extra = " (dry-run)" if record.get("dry_run") else ""
    return (
        f"{record.get('time')}  {record.get('user')}  {record.get('operation')} {subject}  "
        f"{verdict}{extra}  decision {record.get('decision_id')}  policy {record.get('policy_revision')}"
    )
