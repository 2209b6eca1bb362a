"""The policy poll reads files only when one changed (its stat-only stamp moved)."""

from __future__ import annotations

from pathlib import Path

import pytest

import webhook.policy_store as policy_store
from webhook.policy_bundle import PolicyBundle
from webhook.policy_store import PolicyStore


class RecordingEngine:
    """Takes any bundle: what the poll loads, not how it compiles, is under test."""

    name = "recording"

    def __init__(self) -> None:
        self.revision = ""
        self.loads = 0

    async def load(self, bundle: PolicyBundle) -> None:
        self.loads += 1
        self.revision = bundle.revision


async def test_an_unchanged_directory_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "p.rego").write_text("package p\n\nallow := true\n")
    engine = RecordingEngine()
    store = PolicyStore(tmp_path, engine)  # type: ignore[arg-type]
    assert await store.reload() is True
    reads = []
    real_load = policy_store.load_bundle
    monkeypatch.setattr(policy_store, "load_bundle", lambda d: reads.append(d) or real_load(d))

    assert await store.reload() is False
    assert reads == [] and engine.loads == 1

    (tmp_path / "p.rego").write_text("package p\n\nallow := false\n")
    assert await store.reload() is True
    assert len(reads) == 1 and engine.loads == 2

    (tmp_path / "data.yaml").write_text("p: {x: 1}\n")  # a new file moves the stamp too
    assert await store.reload() is True
    assert len(reads) == 2 and engine.loads == 3


async def test_touching_a_file_without_changing_it_reads_but_keeps_the_revision(tmp_path: Path) -> None:
    path = tmp_path / "p.rego"
    path.write_text("package p\n\nallow := true\n")
    engine = RecordingEngine()
    store = PolicyStore(tmp_path, engine)  # type: ignore[arg-type]
    assert await store.reload() is True
    path.write_text(path.read_text())  # new mtime, same content
    assert await store.reload() is False
    assert engine.loads == 1
