"""Identity and issuer regular expressions that cannot stall admission. Pure.

An operator writes the pattern, but the text it runs on (a certificate SAN, an OIDC
issuer) comes from whoever signed the image. Python's backtracking ``re`` can take
exponential time on patterns like ``(a+)+$``. Matching uses the ``regex`` module with
a hard timeout instead: a match that runs out of time is no match (the identity does
not verify: fail closed). Patterns are kept to what cosign's Go regexp (RE2) accepts,
so they mean the same here and there: backreferences and lookarounds are refused
when the configuration is loaded.

Why not google-re2: its wheel and regopy's rego-cpp both carry RE2/abseil C++ code;
loaded into one process, their shared (GNU unique) symbols collide, and every
rego-cpp evaluation then leaked ~350 KB (measured: 47 MB -> 364 MB in 900 evaluations).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import regex

from webhook.errors import ConfigError

log = logging.getLogger("deployguard.identity")

MAX_SUBJECT_CHARS = 4096  # SANs and issuers are URLs or e-mail addresses; longer never matches
MATCH_TIMEOUT_SECONDS = 0.05
# Constructs Go's RE2 lacks: backreferences (\1, \g<1>, (?P=n)) and lookarounds.
_NOT_RE2 = regex.compile(r"\\[1-9]|\\g<|\(\?P=|\(\?<?[=!]|\(\?>|[*+?}][+]")


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern; a ConfigError naming it when RE2 (cosign) could not run it."""
    if _NOT_RE2.search(pattern):
        raise ConfigError(
            f"identity/issuer regex {pattern!r} is not valid RE2 syntax "
            "(no backreferences, lookarounds, atomic groups or possessive quantifiers)"
        )
    try:
        return regex.compile(pattern, regex.VERSION0)
    except regex.error as exc:
        raise ConfigError(f"identity/issuer regex {pattern!r} is not valid RE2 syntax: {exc}") from None


def full_match(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches all of ``text``; running out of time counts as no match."""
    if len(text) > MAX_SUBJECT_CHARS:
        return False
    try:
        return compile_pattern(pattern).fullmatch(text, timeout=MATCH_TIMEOUT_SECONDS) is not None
    except TimeoutError:
        log.warning(
            "identity regex %r gave up after %.2f s on a %d-character subject: treated as no match",
            pattern,
            MATCH_TIMEOUT_SECONDS,
            len(text),
        )
        return False
