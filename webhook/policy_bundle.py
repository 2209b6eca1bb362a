"""A policy revision: the Rego modules and data read from a policy directory.

Reading is the only I/O here; a bundle is an immutable value whose revision is a
hash of its content, so two replicas reading the same files agree on the revision.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from webhook import yaml_limits
from webhook.errors import PolicyLoadError

DATA_FILE_NAMES = ("data.json", "data.yaml", "data.yml")
DATA_SUFFIXES = (".data.json", ".data.yaml", ".data.yml")
MAX_POLICY_FILE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class PolicyBundle:
    """Rego modules (path -> source), their tests, and the merged data document."""

    revision: str
    modules: tuple[tuple[str, str], ...]
    tests: tuple[tuple[str, str], ...]
    data: dict[str, Any] = field(hash=False, compare=False)
    source: str = ""


def default_policy_dir() -> Path:
    """The policies shipped with deployguard: ``policies/`` of a source checkout, else the installed copy."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / "policies"
    if (checkout / "deployguard").is_dir() and (here.parent / "pyproject.toml").is_file():
        return checkout
    return here / "default_policies"  # where pyproject.toml's package-dir mapping installs them


def _is_data_file(path: Path) -> bool:
    return path.name in DATA_FILE_NAMES or path.name.endswith(DATA_SUFFIXES)


def _hidden(path: Path, root: Path) -> bool:
    # Kubernetes ConfigMap volumes keep old revisions in ..data / ..2024_... folders.
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _policy_files(directory: Path) -> list[Path]:
    """Every visible file below ``directory``, following symlinked folders once.

    A ConfigMap volume presents nested keys through symlinked folders, which
    ``Path.rglob`` does not enter on Python 3.11; its ``..data`` folders are hidden.
    """
    found: list[Path] = []
    seen: set[str] = set()
    for root, dirs, files in os.walk(directory, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a symlink loop
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(root) / f for f in files if not f.startswith(".")]
    return sorted(p for p in found if p.is_file() and not _hidden(p, directory))


def directory_stamp(directory: Path) -> tuple[tuple[str, int, int, int], ...]:
    """Names, sizes, mtimes and inodes of the policy files: changes whenever a file does,
    without reading any (the poll every few seconds then costs stat calls, not a YAML parse)."""
    stamp = []
    for path in _policy_files(directory):
        st = path.stat()
        stamp.append((path.relative_to(directory).as_posix(), st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(stamp)


def _merge(into: dict[str, Any], new: dict[str, Any], where: str) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, f"{where}.{key}")
        elif key in into and into[key] != value:
            raise PolicyLoadError(f"data key {where}.{key} is defined twice with different values")
        else:
            into[key] = value


def _read_data(path: Path) -> dict[str, Any]:
    text = path.read_text()
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml_limits.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise PolicyLoadError(f"data file {path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise PolicyLoadError(f"data file {path} must hold a mapping at the top, got {type(doc).__name__}")
    return doc


def load_bundle(directory: Path) -> PolicyBundle:
    """Read every ``*.rego`` and data file under ``directory`` into a bundle."""
    if not directory.is_dir():
        raise PolicyLoadError(f"policy directory {directory} does not exist")
    modules: list[tuple[str, str]] = []
    tests: list[tuple[str, str]] = []
    data: dict[str, Any] = {}
    digest = hashlib.sha256()
    for path in _policy_files(directory):
        rel = path.relative_to(directory).as_posix()
        if path.suffix != ".rego" and not _is_data_file(path):
            continue
        if path.stat().st_size > MAX_POLICY_FILE_BYTES:
            raise PolicyLoadError(f"{path} is larger than {MAX_POLICY_FILE_BYTES} bytes")
        content = path.read_text()
        digest.update(rel.encode() + b"\0" + content.encode() + b"\0")
        if path.suffix == ".rego":
            (tests if path.name.endswith("_test.rego") else modules).append((rel, content))
        else:
            # As in OPA bundles: a data file is mounted at the path of its folder.
            doc = _read_data(path)
            for part in reversed(Path(rel).parent.parts):
                doc = {part: doc}
            _merge(data, doc, "data")
    if not modules:
        raise PolicyLoadError(f"policy directory {directory} holds no .rego modules")
    return PolicyBundle(
        revision=digest.hexdigest()[:12],
        modules=tuple(modules),
        tests=tuple(tests),
        data=data,
        source=str(directory),
    )
