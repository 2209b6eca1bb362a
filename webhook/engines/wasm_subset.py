"""``object.subset`` for the wasm engine. Its arguments cross in Rego's own notation
(``rego_values``), because a set and an array differ here and JSON cannot tell them apart.
"""

from __future__ import annotations

from typing import Any

from webhook.engines.rego_value import RegoSet, rego_contains, rego_equal


def object_subset(args: list[Any]) -> bool:
    """OPA's ``object.subset``: objects key by key (recursing into objects, sets and arrays),
    sets by membership, arrays as a contiguous run, an array against a set by OPA's count
    of the array's elements found in the set (so ``[1, 1]`` covers ``{1, 2}``, as in OPA)."""
    big, small = args[0], args[1]
    if isinstance(big, dict) and isinstance(small, dict):
        return _objects_subset(big, small)
    if isinstance(big, RegoSet) and isinstance(small, RegoSet):
        return all(rego_contains(big, member) for member in small)
    if type(big) is list and isinstance(small, RegoSet):
        return _array_covers_set(big, small)
    if type(big) is list and type(small) is list:
        return _array_subset(big, small)
    raise ValueError("both arguments object.subset must be of the same type or array and set")


def _objects_subset(big: dict[Any, Any], small: dict[Any, Any]) -> bool:
    for key, wanted in small.items():
        if key not in big:
            return False
        have = big[key]
        if rego_equal(have, wanted):
            continue
        if isinstance(have, dict) and isinstance(wanted, dict):
            if not _objects_subset(have, wanted):
                return False
        elif isinstance(have, RegoSet) and isinstance(wanted, RegoSet):
            if not all(rego_contains(have, member) for member in wanted):
                return False
        elif type(have) is list and type(wanted) is list:
            if not _array_subset(have, wanted):
                return False
        else:
            return False
    return True


def _array_subset(big: list[Any], small: list[Any]) -> bool:
    """``small`` as a contiguous run somewhere in ``big``."""
    if len(small) > len(big):
        return False
    return any(all(rego_equal(big[start + i], small[i]) for i in range(len(small)))
               for start in range(len(big) - len(small) + 1))  # fmt: skip


def _array_covers_set(big: list[Any], small: RegoSet) -> bool:
    """OPA's count: true once as many of the array's elements are in the set as the set has
    members (duplicates count again); an empty array is never a superset."""
    unmatched = len(small)
    for element in big:
        if rego_contains(small, element):
            unmatched -= 1
        if unmatched == 0:
            return True
    return False


object_subset.rego_values = True  # type: ignore[attr-defined]
