"""The TZif reading behind Go's zone-abbreviation lookup (time.parse_ns on the wasm engine)."""

from __future__ import annotations

import zoneinfo
from pathlib import Path

import pytest

from webhook.engines.go_time import tzif_abbreviations


def _zone_data(name: str) -> bytes:
    for directory in zoneinfo.TZPATH:
        path = Path(directory) / name
        if path.is_file():
            return path.read_bytes()
    pytest.fail(f"no TZif file for {name} under {zoneinfo.TZPATH}")


def test_a_zone_lists_its_abbreviations_with_their_offsets() -> None:
    listed = tzif_abbreviations(_zone_data("Europe/Berlin"))
    assert ("CET", 3600) in listed and ("CEST", 7200) in listed


@pytest.mark.parametrize("cut", [0, 10, 44, 60, 200, -40])
def test_damaged_data_lists_nothing_rather_than_failing(cut: int) -> None:
    data = _zone_data("Europe/Berlin")
    assert isinstance(tzif_abbreviations(data[:cut]), list)
    assert tzif_abbreviations(b"not a zone file at all, not TZif at any length") == []
