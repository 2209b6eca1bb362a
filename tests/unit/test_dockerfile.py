"""The container image cannot be built here (no Docker engine): check it for the obvious."""

from __future__ import annotations

import json
import re
import tomllib

import yaml
from typer.testing import CliRunner

from tests.conftest import REPO
from webhook.cli import app

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def build_args() -> dict[str, str]:
    return dict(rest.split("=", 1) for word, rest in instructions() if word == "ARG" and "=" in rest)


def _images() -> list[tuple[str, str]]:
    """(image with build args filled in, stage name) of every FROM."""
    args = build_args()
    found = []
    for word, rest in instructions():
        if word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            found.append((image, parts[2] if len(parts) > 2 else ""))
    return found


def test_base_images_are_pinned_slim_python_and_never_latest() -> None:
    bases = [image for image, stage in _images() if stage != "opa"]
    assert len(bases) >= 2, "multi-stage: a build stage and a runtime stage"
    for image in bases:
        name, _, tag = image.partition(":")
        assert name == "python" and tag, f"{image}: a python base with an explicit tag"
        assert tag != "latest" and re.match(r"\d+\.\d+\.\d+-slim", tag), f"{image}: pin the Python patch version, slim"


def test_the_opa_for_the_wasm_engine_is_the_sidecars_release_where_the_chart_looks() -> None:
    [(image, _)] = [(image, stage) for image, stage in _images() if stage == "opa"]
    values = yaml.safe_load((REPO / "charts/deployguard/values.yaml").read_text())
    assert image == f"openpolicyagent/opa:{values['opa']['image']['tag']}" and image.endswith("-static")
    copies = [rest for word, rest in instructions() if word == "COPY" and rest.startswith("--from=opa ")]
    assert copies == ["--from=opa /opa /usr/local/bin/opa"]
    config = (REPO / "charts/deployguard/templates/configmap-config.yaml").read_text()
    assert '"opa_binary" "/usr/local/bin/opa"' in config


def test_runs_as_the_unprivileged_user_the_chart_expects() -> None:
    users = [rest for word, rest in instructions() if word == "USER"]
    assert users, "the image must not run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid (runAsNonRoot can only check numbers)"
    values = yaml.safe_load((REPO / "charts/deployguard/values.yaml").read_text())
    assert int(uid) == values["podSecurityContext"]["runAsUser"]


def test_entrypoint_is_the_cli_and_cmd_is_a_real_command() -> None:
    entry = [json.loads(rest) for word, rest in instructions() if word == "ENTRYPOINT"]
    cmd = [json.loads(rest) for word, rest in instructions() if word == "CMD"]
    assert entry == [["deployguard"]]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["deployguard"] == "webhook.cli:main"
    assert cmd and cmd[-1][0] == "serve"
    help_text = CliRunner().invoke(app, [*cmd[-1][:1], "--help"]).output
    for option in cmd[-1][1:]:
        if option.startswith("--"):
            assert option in help_text, f"`deployguard serve` has no {option}"


def test_dependencies_are_installed_from_exact_pins() -> None:
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert "--constraint constraints.txt" in runs
    pins = {
        line.split("==")[0].lower()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}
    missing = sorted(names - pins)
    assert not missing, f"no pin in constraints.txt for {missing}; run: .venv/bin/python scripts/lock_constraints.py"
