"""Rego values as text (``opa_value_dump`` / ``opa_value_parse`` of the wasm engine), with sets.

JSON has no sets, and most host built-ins do not care: a set arrives as an array. Those
whose result depends on the difference (``object.subset``: an array must appear in order,
a set's members anywhere) take their arguments in Rego's own notation instead, where a
set is ``{1, 2}`` (``set()`` when empty) beside objects ``{"a": 1}``; here a set becomes
a ``RegoSet``. Rego's equality is stricter than Python's (``true`` is not ``1``, a set is
not an array), so ``rego_equal`` compares as Rego does.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_SPACE = re.compile(r"\s*")


class RegoSet(list[Any]):
    """A Rego set, its members in the order Rego printed them."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.at = text, 0

    def _skip(self) -> None:
        match = _SPACE.match(self.text, self.at)
        self.at = match.end() if match else self.at

    def _expect(self, token: str) -> None:
        self._skip()
        if not self.text.startswith(token, self.at):
            raise ValueError(f"rego value: expected {token!r} at {self.at} of {self.text[:80]!r}")
        self.at += len(token)

    def _peek(self, token: str) -> bool:
        self._skip()
        return self.text.startswith(token, self.at)

    def value(self) -> Any:
        self._skip()
        text, at = self.text, self.at
        if text.startswith("set()", at):
            self.at += 5
            return RegoSet()
        for word, meaning in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, at):
                self.at += len(word)
                return meaning
        if text.startswith('"', at):
            string, self.at = json.decoder.scanstring(text, at + 1)  # type: ignore[attr-defined]
            return string
        if text.startswith("[", at):
            self.at += 1
            return self._items("]", list)
        if text.startswith("{", at):
            self.at += 1
            return self._braced()
        number = _NUMBER.match(text, at)
        if number is None:
            raise ValueError(f"rego value: unexpected text at {at} of {text[:80]!r}")
        self.at = number.end()
        return json.loads(number.group())

    def _items(self, close: str, kind: type) -> Any:
        items = kind()
        if self._peek(close):
            self.at += 1
            return items
        while True:
            items.append(self.value())
            if self._peek(","):
                self.at += 1
                continue
            self._expect(close)
            return items

    def _braced(self) -> Any:
        """An object (``{"a": 1}``), or a set (``{1, 2}``): told apart by a colon after the first."""
        if self._peek("}"):
            self.at += 1
            return {}
        first = self.value()
        if not self._peek(":"):
            members = RegoSet([first])
            while self._peek(","):
                self.at += 1
                members.append(self.value())
            self._expect("}")
            return members
        result: dict[Any, Any] = {}
        key = first
        while True:
            self._expect(":")
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise ValueError("rego value: an object key that is not a string, number, boolean or null")
            result[key] = self.value()
            if not self._peek(","):
                self._expect("}")
                return result
            self.at += 1
            key = self.value()


def parse_rego_value(text: str) -> Any:
    """A Rego value from ``opa_value_dump``'s text."""
    parser = _Parser(text)
    value = parser.value()
    parser._skip()
    if parser.at != len(text):
        raise ValueError(f"rego value: text after the value at {parser.at}")
    return value


def rego_equal(left: Any, right: Any) -> bool:
    """Rego's equality: types must agree (``true`` is not ``1``; a set is not an array),
    numbers compare by value, sets regardless of order."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, RegoSet) or isinstance(right, RegoSet):
        if not (isinstance(left, RegoSet) and isinstance(right, RegoSet)) or len(left) != len(right):
            return False
        return all(rego_contains(right, member) for member in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(rego_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(rego_equal(left[k], right[k]) for k in left)
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and bool(left == right)


def rego_contains(members: list[Any], value: Any) -> bool:
    return any(rego_equal(member, value) for member in members)
