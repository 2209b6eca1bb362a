"""Freed heap goes back to the OS after a burst (webhook/memory_release.py), on the real glibc."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from webhook.config import load_settings
from webhook.errors import ConfigError
from webhook.memory_release import GlibcHeap, MemoryReleaser, memory_releaser, rss_bytes, worth_trimming

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("free", "rss", "baseline", "expected"),
    [
        (64 * MIB, 200 * MIB, 130 * MIB, True),  # grew 70 MB, 64 MB of it free: a burst that ended
        (64 * MIB, 140 * MIB, 130 * MIB, False),  # free memory, but RSS barely grew: trimmed before
        (2 * MIB, 200 * MIB, 130 * MIB, False),  # grew with live data (caches): nothing to give back
        (16 * MIB, 146 * MIB, 130 * MIB, True),  # exactly the threshold both ways
    ],
)
def test_worth_trimming(free: int, rss: int, baseline: int, expected: bool) -> None:
    assert worth_trimming(free=free, rss=rss, baseline=baseline, threshold=16 * MIB) is expected


def test_never_while_busy() -> None:
    """Under load the freed heap is about to be used again: no trim until the process is quiet."""
    grown = {"free": 64 * MIB, "rss": 200 * MIB, "baseline": 130 * MIB, "threshold": 16 * MIB}
    assert worth_trimming(**grown, busy=0.05) is True
    assert worth_trimming(**grown, busy=0.9) is False


@pytest.fixture
def heap() -> GlibcHeap:
    found = GlibcHeap.of_this_process()
    assert found is not None, "the test machines run glibc 2.33 or later"
    return found


def _burst(megabytes: int) -> None:
    """Allocate and touch ``megabytes`` in 4 KiB blocks from glibc's heap (below its mmap
    threshold, as request buffers are), keep one block after them so that the heap's top
    cannot shrink by itself, and free the rest."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(4096) for _ in range(megabytes * 256)]
    for block in blocks:
        ctypes.memset(block, 1, 4096)
    pin = libc.malloc(4096)
    for block in blocks:
        libc.free(block)
    _burst.pinned.append(pin)  # type: ignore[attr-defined]


_burst.pinned = []  # type: ignore[attr-defined]


def test_a_burst_freed_is_returned_and_rss_falls(heap: GlibcHeap) -> None:
    releaser = MemoryReleaser(heap, 16 * MIB)
    _burst(96)
    before = rss_bytes()
    assert heap.free_bytes() >= 90 * MIB
    assert releaser.check(busy=0.9) is None  # still serving: kept
    released = releaser.check(busy=0.0)
    assert released is not None
    assert released.rss_before - released.rss_after >= 64 * MIB, released
    assert rss_bytes() <= before - 64 * MIB
    assert releaser.baseline == released.rss_after
    assert releaser.check(busy=0.0) is None  # nothing grew since: no second trim


def test_no_trim_without_growth(heap: GlibcHeap) -> None:
    releaser = MemoryReleaser(heap, 16 * MIB)
    assert releaser.check(busy=0.0) is None


def test_memory_releaser_off_at_zero() -> None:
    assert memory_releaser(0) is None
    assert memory_releaser(16) is not None


def test_negative_threshold_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  memory_release_threshold_mib: -1\n")
    with pytest.raises(ConfigError, match="memory_release_threshold_mib must be 0"):
        load_settings(config)
