"""Process log lines cannot be forged or reordered by what a submitter writes in an object."""

from __future__ import annotations

import logging
import sys

import pytest

from webhook.observe.log_format import PrintableFormatter, printable


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("web\nFORGED", "web\\x0aFORGED"),
        ("a\rb\x00c\x1b[31m", "a\\x0db\\x00c\\x1b[31m"),
        ("line\u2028sep\u2029para\x85nel", "line\\u2028sep\\u2029para\\x85nel"),
        ("\u202egnp.exe", "\\u202egnp.exe"),  # a right-to-left override reorders what is read
        ("\u2066isolate\u2069", "\\u2066isolate\\u2069"),
        ("café 日本 😀 tab\tend", "café 日本 😀 tab\\x09end"),  # printable non-ASCII stays
    ],
)
def test_unsafe_characters_are_escaped(text: str, written: str) -> None:
    assert printable(text) == written


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("deployguard", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_a_message_is_one_line_and_a_traceback_keeps_its_lines() -> None:
    formatter = PrintableFormatter("%(levelname)s %(name)s: %(message)s")
    assert formatter.format(_record("rejected %s", "shop/web\nWARNING deployguard: forged")) == (
        "WARNING deployguard: rejected shop/web\\x0aWARNING deployguard: forged"
    )
    with_traceback = formatter.format(_record("committer %s failed", "x\ny", exc=True)).splitlines()
    assert with_traceback[0] == "WARNING deployguard: committer x\\x0ay failed"
    assert with_traceback[1] == "Traceback (most recent call last):" and with_traceback[-1] == "ValueError: boom"
