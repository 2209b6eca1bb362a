"""YAML from people (manifests for `deployguard check`, policy cases, calendars, settings) is
held to a nesting depth and to how far its aliases expand, with a clear error beyond."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from webhook import yaml_limits
from webhook.cli import app

LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
)
DEEP = "[" * 20_000 + "]" * 20_000


def test_an_alias_bomb_is_refused_before_anything_expands_it() -> None:
    """Nine levels of nine aliases: 387 million values from 400 bytes. Loading it was cheap
    (shared references); `deployguard check` then took 6.6 GB and two minutes, and was killed."""
    with pytest.raises(yaml_limits.YAMLTooLarge, match=r"more than 1,000,000 values once its aliases are expanded"):
        yaml_limits.safe_load(LAUGHS)


@pytest.mark.parametrize("text", [DEEP, "a:\n" + "".join(f"{'  ' * i}- \n" for i in range(1, 200))])
def test_nesting_beyond_the_limit_is_refused_not_a_recursion_error(text: str) -> None:
    with pytest.raises(yaml_limits.YAMLTooLarge, match=r"nested deeper than 128 levels"):
        yaml_limits.safe_load_all(text)


def test_a_recursive_anchor_is_refused() -> None:
    with pytest.raises(yaml_limits.YAMLTooLarge, match=r"contains itself"):
        yaml_limits.safe_load("a: &a [1, *a]")


def test_ordinary_documents_and_aliases_load_as_before() -> None:
    text = "env: &env [{name: A, value: '1'}]\nfirst: {env: *env}\nsecond: {env: *env}\n---\n---\nc: 1\n"
    assert yaml_limits.safe_load_all(text) == [
        {"env": [{"name": "A", "value": "1"}], "first": {"env": [{"name": "A", "value": "1"}]},
         "second": {"env": [{"name": "A", "value": "1"}]}},
        None,
        {"c": 1},
    ]  # fmt: skip
    assert yaml_limits.safe_load("[" * 127 + "]" * 127) is not None
    assert yaml_limits.safe_load("") is None


@pytest.mark.parametrize(("text", "reason"), [(LAUGHS, "aliases are expanded"), (DEEP, "nested deeper than 128")])
def test_check_refuses_such_a_manifest_as_bad_input(tmp_path: Path, text: str, reason: str) -> None:
    """Exit 2 (bad input) with the reason; a RecursionError ended as exit 1, which means "denied"."""
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(text)
    result = CliRunner().invoke(app, ["check", "-f", str(manifest)])
    assert result.exit_code == 2, result.output
    assert "is refused" in result.output and reason in result.output
