"""``deployguard check --explain``: every rule evaluated on one input, and what it said.

The decision document only lists rules that fired. An author changing a policy also
needs the silent ones ("did my rule run at all? in which mode?"), so each rule
package's ``violation`` set is evaluated on its own, on the same input the decision
was made on, with the embedded engine. The modes come from the policy itself
(``data.deployguard.rule_modes``), so this never disagrees with ``decision.rego``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import regopy
from regopy import rego_shared

from webhook.engines.embedded import compile_bundle, parse_output
from webhook.errors import EngineError
from webhook.policy_bundle import PolicyBundle

_RULE_PACKAGE = re.compile(r"^package\s+deployguard\.rules\.(\w+)\s*$", re.MULTILINE)
MODES_ENTRYPOINT = "deployguard/rule_modes"


@dataclass(frozen=True)
class RuleExplanation:
    """One rule on one input: its mode, whether it fired, its findings or its error."""

    rule: str
    mode: str  # enforce | warn | dryrun, or "not evaluated" when the decision skips the package
    violations: tuple[Mapping[str, Any], ...] = ()
    error: str = ""

    @property
    def fired(self) -> bool:
        return bool(self.violations)


def rule_packages(bundle: PolicyBundle) -> list[str]:
    """The ``deployguard.rules.<rule>`` packages defined by the bundle's (non-test) modules."""
    return sorted({m.group(1) for _, source in bundle.modules for m in _RULE_PACKAGE.finditer(source)})


def _violation_entrypoint(rule: str) -> str:
    return f"deployguard/rules/{rule}/violation"


class Explainer:
    """A bundle compiled with one entrypoint per rule's ``violation``; compiled once, run per input."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self.rules = rule_packages(bundle)
        entrypoints = (MODES_ENTRYPOINT, *(_violation_entrypoint(r) for r in self.rules))
        self._compiled = compile_bundle(bundle, entrypoints=entrypoints)

    def _query(self, runner: regopy.Interpreter, entrypoint: str) -> Any:
        impl = rego_shared.rego_bundle_query_entrypoint(runner._impl, self._compiled._impl, entrypoint)
        try:
            ok, text = rego_shared.rego_output_ok(impl), rego_shared.rego_output_string(impl)
        finally:
            rego_shared.rego_free_output(impl)
        return parse_output(ok, text, "data." + entrypoint.replace("/", "."))

    def explain(self, policy_input: Mapping[str, Any]) -> list[RuleExplanation]:
        """Evaluate every rule package's ``violation`` on ``policy_input``."""
        runner = regopy.Interpreter()
        runner.strict_built_in_errors = True
        runner.set_input_term(orjson.dumps(policy_input).decode())
        try:
            modes = self._query(runner, MODES_ENTRYPOINT)
        except EngineError:
            modes = {}
        if not isinstance(modes, dict):
            modes = {}
        explained = []
        for rule in sorted(set(self.rules) | set(modes)):
            mode = str(modes.get(rule, "not evaluated"))
            if rule not in self.rules:
                explained.append(RuleExplanation(rule, mode, error="no package deployguard.rules." + rule))
                continue
            try:
                value = self._query(runner, _violation_entrypoint(rule))
            except EngineError as exc:
                explained.append(RuleExplanation(rule, mode, error=str(exc)))
                continue
            items = value if isinstance(value, list) else [value]
            violations = tuple(v if isinstance(v, dict) else {"message": str(v)} for v in items)
            explained.append(RuleExplanation(rule, mode, violations=violations))
        return explained


def explanation_text(explained: Sequence[RuleExplanation]) -> str:
    """Human-readable lines: one per rule, its mode, and why it fired or that it did not."""
    lines = [f"  rules evaluated ({len(explained)}):"]
    width = max((len(e.rule) for e in explained), default=0)
    for e in explained:
        head = f"    {e.rule:<{width}}  {e.mode:<13}"
        if e.error:
            lines.append(f"{head} error: {e.error}")
        elif not e.fired:
            lines.append(f"{head} no violation")
        else:
            lines.append(f"{head} fired ({len(e.violations)})")
            for v in e.violations:
                lines.append(f"        why: {v.get('message', '')}")
                if v.get("fix"):
                    lines.append(f"        fix: {v['fix']}")
    return "\n".join(lines)


def explanation_json(explained: Sequence[RuleExplanation]) -> list[dict[str, Any]]:
    """The same as a list of objects, for ``-o json``."""
    return [
        {"rule": e.rule, "mode": e.mode, "fired": e.fired, "violations": list(e.violations), "error": e.error or None}
        for e in explained
    ]
