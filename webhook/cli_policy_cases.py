"""CLI glue for policy authors: ``policy test`` case files and ``check --explain``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from webhook.check import outcome_json, outcome_text
from webhook.config import Settings
from webhook.engines import PolicyEngine, make_offline_engine
from webhook.errors import DeployguardError
from webhook.observe.explain import Explainer, explanation_json, explanation_text
from webhook.policy_bundle import load_bundle
from webhook.policy_cases import CaseResult, PolicyCase, default_cases_dir, load_cases, run_cases
from webhook.reviewer import Outcome


def test_cases(policy_dir: Path, cases_dir: Path | None, settings: Settings, *, verbose: bool) -> int:
    """Run the cases in ``cases_dir`` (or the conventional folder, when it exists); return the failures."""
    if cases_dir is None:
        cases_dir = default_cases_dir(policy_dir)
        if not cases_dir.is_dir():
            return 0
    try:
        cases = load_cases(cases_dir)
        if not cases:
            raise DeployguardError(f"no case files (*.yaml, *.yml, *.json) in {cases_dir}")
        engine = make_offline_engine(settings.policy)
        results = asyncio.run(_run(engine, policy_dir, settings, cases))
    except DeployguardError as exc:
        typer.echo(f"deployguard: {exc}", err=True)
        raise typer.Exit(1) from None
    failed = [r for r in results if not r.passed]
    typer.echo(f"cases in {cases_dir} (engine {engine.name}):")
    for result in results:
        if verbose or not result.passed:
            status = "PASS" if result.passed else "FAIL"
            typer.echo(f"{result.case.source} ({result.case.name}): {status}")
            for problem in result.problems:
                typer.echo(f"    {problem}")
    typer.echo("-" * 40)
    typer.echo(
        f"CASES PASS: {len(results) - len(failed)}/{len(results)}" + (f"\nCASES FAIL: {len(failed)}" if failed else "")
    )
    return len(failed)


async def _run(
    engine: PolicyEngine, policy_dir: Path, settings: Settings, cases: Sequence[PolicyCase]
) -> list[CaseResult]:
    """Load the policies into the engine the webhook would use, then run every case on it."""
    await engine.load(load_bundle(policy_dir))
    return await run_cases(engine, settings, cases)


def explained_outcomes(directory: Path, outcomes: Sequence[Outcome], *, text: bool) -> list[dict[str, Any]]:
    """Print (text) each outcome followed by every rule's explanation; return the JSON form."""
    explainer = Explainer(load_bundle(directory))
    results = []
    for outcome in outcomes:
        explained = explainer.explain(outcome.policy_input) if outcome.policy_input is not None else []
        if text:
            typer.echo(outcome_text(outcome))
            if outcome.policy_input is None:
                typer.echo("  rules evaluated: none (deployguard does not check this kind)")
            else:
                typer.echo(explanation_text(explained))
        results.append({**outcome_json(outcome), "explain": explanation_json(explained)})
    return results
