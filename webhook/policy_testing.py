"""Run a policy directory's Rego tests (``test_*`` rules) on the embedded engine.

``opa test`` runs the same files on OPA; both must pass, which is how we learn of a
rego-cpp gap before it serves a wrong answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import regopy

from webhook.policy_bundle import PolicyBundle

_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)


@dataclass(frozen=True)
class TestResult:
    package: str
    name: str
    passed: bool
    detail: str = ""

    @property
    def qualified(self) -> str:
        return f"data.{self.package}.{self.name}"


def discover_tests(bundle: PolicyBundle) -> list[tuple[str, str]]:
    """(package, rule) for every ``test_*`` rule in the test modules."""
    found: list[tuple[str, str]] = []
    for _, source in bundle.tests:
        package = _PACKAGE.search(source)
        if not package:
            continue
        for name in dict.fromkeys(_TEST_RULE.findall(source)):
            found.append((package.group(1), name))
    return found


def run_tests(bundle: PolicyBundle) -> list[TestResult]:
    interp = regopy.Interpreter()
    interp.strict_built_in_errors = True
    interp.add_data(bundle.data)
    for path, source in bundle.modules + bundle.tests:
        interp.add_module(path, source)
    results = []
    for package, name in discover_tests(bundle):
        query = f"data.{package}.{name}"
        try:
            output = interp.query(query)
        except regopy.RegoError as exc:
            results.append(TestResult(package, name, False, f"error: {exc}"))
            continue
        text = str(output)
        if not output.ok():
            results.append(TestResult(package, name, False, f"error: {text}"))
        elif text == "undefined" or not output.results:
            results.append(TestResult(package, name, False, "undefined"))
        else:
            value = output.results[0].expressions[0] if output.results[0].expressions else None
            results.append(TestResult(package, name, value is True, "" if value is True else f"= {value!r}"))
    return results
