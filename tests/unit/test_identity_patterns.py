"""Identity regexes cannot blow up: bounded by a timeout, RE2-only syntax refused at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.config import load_settings
from webhook.errors import ConfigError
from webhook.trust.identity_patterns import MAX_SUBJECT_CHARS, full_match

CATASTROPHIC = r"(a+)+$"  # exponential backtracking in Python's re on "aaaa…!"


def test_catastrophic_pattern_on_hostile_text_returns() -> None:
    # With Python's re this input needs ~2**40 steps (it would never return in a test run);
    # the regex module gives up after its timeout. No timing assertion: the test finishing is the check.
    hostile = "a" * 40 + "!"
    assert full_match(CATASTROPHIC, hostile) is False
    assert full_match(r"(x+x+)+y", "x" * MAX_SUBJECT_CHARS) is False


def test_identity_patterns_keep_their_meaning() -> None:
    pattern = r"https://github.com/acme/.+/.github/workflows/release.yml@refs/tags/v.*"
    assert full_match(pattern, "https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v1.2.0")
    assert not full_match(pattern, "https://github.com/evil/shop/.github/workflows/release.yml@refs/tags/v1")
    assert not full_match(pattern, "xhttps://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v1")


def test_overlong_subject_never_matches() -> None:
    assert not full_match(".*", "a" * (MAX_SUBJECT_CHARS + 1))


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)a", r"(?<!x)y", "(unclosed"])
def test_patterns_re2_cannot_run_are_refused_when_loading_settings(tmp_path: Path, pattern: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "images:\n  authorities:\n    - name: ci\n      identity_regex: " + repr(pattern).replace("\\\\", "\\") + "\n"
        "      issuer: https://token.actions.githubusercontent.com\n"
    )
    with pytest.raises(ConfigError, match="not valid RE2 syntax"):
        load_settings(config)
