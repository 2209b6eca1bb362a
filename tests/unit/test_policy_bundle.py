"""Reading a policy directory the way it is mounted in a cluster."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import POLICIES
from webhook.policy_bundle import load_bundle


def test_configmap_style_symlinked_folders_are_followed(tmp_path: Path) -> None:
    """A ConfigMap volume: real files under ..2026_x/, a ..data symlink, and symlinks to its entries."""
    versioned = tmp_path / "mount" / "..2026_11_27"
    shutil.copytree(POLICIES, versioned)
    mount = tmp_path / "mount"
    os.symlink("..2026_11_27", mount / "..data")
    for entry in os.listdir(versioned):
        os.symlink(f"..data/{entry}", mount / entry)
    mounted, original = load_bundle(mount), load_bundle(POLICIES)
    assert [p for p, _ in mounted.modules] == [p for p, _ in original.modules]
    assert mounted.revision == original.revision
    assert mounted.data == original.data


def test_a_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    shutil.copytree(POLICIES, tmp_path / "p")
    os.symlink("..", tmp_path / "p" / "deployguard" / "loop")
    assert load_bundle(tmp_path / "p").modules
