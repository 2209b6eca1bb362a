"""Rego's value notation (what the wasm engine's opa_value_dump prints), read back with sets."""

from __future__ import annotations

import pytest

from webhook.engines.rego_value import RegoSet, parse_rego_value, rego_equal


def test_sets_objects_and_scalars_are_told_apart() -> None:
    value = parse_rego_value('{"a": {1, "x", [true]}, "b": set(), "c": {}, "d": [null, -1.5e3, "q\\"\\u00e9"]}')
    assert value == {"a": [1, "x", [True]], "b": [], "c": {}, "d": [None, -1500.0, 'q"é']}
    assert isinstance(value["a"], RegoSet) and isinstance(value["b"], RegoSet)
    assert not isinstance(value["c"], RegoSet) and not isinstance(value["d"], RegoSet)
    assert isinstance(parse_rego_value("{{1}, {2: 3}}")[1], dict)


@pytest.mark.parametrize("text", ["{1: }", "[1,", "{1, 2", "tru", "1 2", "{[1]: 2}"])
def test_broken_text_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="rego value"):
        parse_rego_value(text)


def test_equality_is_rego_s() -> None:
    assert rego_equal(1, 1.0) and not rego_equal(True, 1) and not rego_equal(0, False)
    assert rego_equal(RegoSet([1, 2]), RegoSet([2, 1])) and not rego_equal(RegoSet([1]), [1])
    assert rego_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]}) and not rego_equal({"a": 1}, {"b": 1})
