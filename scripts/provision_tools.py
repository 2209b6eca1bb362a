#!/usr/bin/env python3
"""Build and cache the real components the test tiers run against.

Our machines reach the Go module proxy but no download sites, so the binaries a
user would download (OPA, etcd, kube-apiserver, kubectl, ...) are built here from
their Go modules at pinned versions and cached outside the repository, keyed by
version. A second run finds them and takes seconds.

Binaries the user already has are used instead of building:
  * ``KUBEBUILDER_ASSETS`` (the envtest convention: a folder holding etcd,
    kube-apiserver and kubectl),
  * any tool already on ``PATH`` when ``DEPLOYGUARD_USE_PATH_TOOLS=1``, and ``opa``
    on ``PATH`` always.

Usage::

    python3 scripts/provision_tools.py            # build what is missing
    python3 scripts/provision_tools.py --print-dir  # ... then print the bin folder
    python3 scripts/provision_tools.py opa etcd     # just these
    python3 scripts/provision_tools.py gator vegeta # optional: benchmark peer and load client

Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("DEPLOYGUARD_TOOLS_CACHE", Path.home() / ".cache" / "deployguard" / "tools"))
BIN = CACHE / "bin"

KUBERNETES = "v1.34.4"
ETCD = "v3.6.16"


@dataclass(frozen=True)
class GoBuild:
    """One Go module build producing one or more binaries.

    ``local_replaces`` maps the module's own ``replace ... => ./path`` directives
    (which ``go install`` refuses) onto published versions of those modules.
    """

    name: str
    module: str
    version: str
    packages: dict[str, str]  # binary name -> Go package path
    staging_version: str | None = None  # version for locally replaced sibling modules
    ldflags: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


def _k8s_ldflags(version: str) -> tuple[str, ...]:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return tuple(flags)


BUILDS: tuple[GoBuild, ...] = (
    GoBuild("opa", "github.com/open-policy-agent/opa", "v1.22.3", {"opa": "github.com/open-policy-agent/opa"}),
    GoBuild("etcd", "go.etcd.io/etcd/server/v3", ETCD, {"etcd": "go.etcd.io/etcd/server/v3"}, staging_version=ETCD),
    GoBuild(
        "kubernetes",
        "k8s.io/kubernetes",
        KUBERNETES,
        {
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        },
        staging_version="v0." + KUBERNETES.split(".", 1)[1],
        ldflags=_k8s_ldflags(KUBERNETES),
    ),
    GoBuild(
        "go-containerregistry",
        "github.com/google/go-containerregistry",
        "v0.20.6",
        {
            "registry": "github.com/google/go-containerregistry/cmd/registry",
            "crane": "github.com/google/go-containerregistry/cmd/crane",
        },
    ),
    GoBuild(
        "cosign", "github.com/sigstore/cosign/v2", "v2.6.5", {"cosign": "github.com/sigstore/cosign/v2/cmd/cosign"}
    ),
    GoBuild("helm", "helm.sh/helm/v3", "v3.19.0", {"helm": "helm.sh/helm/v3/cmd/helm"}),
    # Gatekeeper's gator: the peer in bench/peers.py only, so not in DEFAULT.
    GoBuild(
        "gator",
        "github.com/open-policy-agent/gatekeeper/v3",
        "v3.23.1",
        {"gator": "github.com/open-policy-agent/gatekeeper/v3/cmd/gator"},
    ),
    # vegeta: the open-loop constant-rate HTTPS client of bench/http_throughput.py
    # ("p99 at half of the maximum rate"), only there, so not in DEFAULT either.
    GoBuild("vegeta", "github.com/tsenart/vegeta/v12", "v12.13.0", {"vegeta": "github.com/tsenart/vegeta/v12"}),
)
DEFAULT = ("opa", "etcd", "kubernetes", "helm", "go-containerregistry", "cosign")


def log(msg: str) -> None:
    print(f"[provision {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"provision: `{' '.join(cmd)}` failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def local_replaces(gomod: str) -> list[str]:
    """Module paths that the upstream go.mod replaces with a local directory."""
    found = []
    for line in gomod.splitlines():
        m = re.match(r"^\s*(?:replace\s+)?(\S+)(?:\s+\S+)?\s*=>\s*(\.\.?/\S*)\s*$", line)
        if m and "FORBIDDEN" not in m.group(2):
            found.append(m.group(1))
    return found


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    env["GOFLAGS"] = "-mod=mod"
    env.setdefault("GOTOOLCHAIN", "local")
    return env


def user_supplied(binary: str) -> Path | None:
    """A binary the user already has, following the envtest and PATH conventions."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / binary).is_file():
        return Path(assets) / binary
    if binary == "opa" or os.environ.get("DEPLOYGUARD_USE_PATH_TOOLS") == "1":
        found = shutil.which(binary)
        if found and not str(found).startswith(str(BIN)):
            return Path(found)
    return None


def build(spec: GoBuild) -> None:
    out = CACHE / spec.key
    wanted = {b: p for b, p in spec.packages.items() if not (out / b).is_file()}
    for binary in list(wanted):
        mine = user_supplied(binary)
        if mine:
            log(f"{binary}: using {mine}")
            link(binary, mine)
            del wanted[binary]
    for binary in spec.packages:
        if binary not in wanted and (out / binary).is_file():
            link(binary, out / binary)
    if not wanted:
        return
    if not shutil.which("go"):
        raise SystemExit(
            f"provision: cannot build {', '.join(wanted)}: the `go` command is missing "
            "(install Go >= 1.24, or point KUBEBUILDER_ASSETS at existing binaries)"
        )
    env = go_env() | spec.env
    workdir = CACHE / "build" / spec.key
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"building {', '.join(wanted)} from {spec.module}@{spec.version} (this can take minutes on a cold cache)")
    replaces = []
    if spec.staging_version:
        info = json.loads(run(["go", "mod", "download", "-json", f"{spec.module}@{spec.version}"], workdir, env))
        upstream = Path(info["GoMod"]).read_text()
        for mod in local_replaces(upstream):
            replaces.append(f"replace {mod} => {mod} {spec.staging_version}")
    (workdir / "go.mod").write_text(
        f"module deployguard.local/toolbuild/{spec.name}\n\ngo 1.24\n\nrequire {spec.module} {spec.version}\n\n"
        + "\n".join(replaces)
        + "\n"
    )
    (workdir / "go.sum").touch()
    for pkg in wanted.values():
        run(["go", "get", f"{pkg}@{spec.version}"], workdir, env)
    staging = tempfile.mkdtemp(dir=workdir)
    cmd = ["go", "build", "-trimpath", "-ldflags", " ".join(("-s", "-w", *spec.ldflags)), "-o", staging + "/"]
    proc = subprocess.Popen(
        cmd + list(wanted.values()), cwd=workdir, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    while proc.poll() is None:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            log(f"  ... still building {spec.name} ({int(time.monotonic() - started)} s)")
    output = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"provision: building {spec.name} failed:\n{output}")
    out.mkdir(parents=True, exist_ok=True)
    for binary, pkg in wanted.items():
        produced = Path(staging) / pkg.rstrip("/").split("/")[-1]
        if not produced.is_file():
            produced = Path(staging) / binary
        if not produced.is_file():  # e.g. a module root like .../server/v3 builds as "v3" or "server"
            candidates = [p for p in Path(staging).iterdir() if p.is_file()]
            if len(candidates) != 1:
                raise SystemExit(f"provision: cannot find the built {binary} in {staging}")
            produced = candidates[0]
        os.replace(produced, out / binary)
        link(binary, out / binary)
    shutil.rmtree(staging, ignore_errors=True)
    log(f"built {', '.join(wanted)} in {time.monotonic() - started:.0f} s")


def link(binary: str, target: Path) -> None:
    BIN.mkdir(parents=True, exist_ok=True)
    dest = BIN / binary
    if dest.is_symlink() or dest.exists():
        if dest.resolve() == target.resolve():
            return
        dest.unlink()
    dest.symlink_to(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "groups",
        nargs="*",
        help=f"build groups (default: {' '.join(DEFAULT)}; all: {' '.join(b.name for b in BUILDS)})",
    )
    parser.add_argument("--print-dir", action="store_true", help="print the folder holding the binaries")
    args = parser.parse_args(argv)
    names = args.groups or list(DEFAULT)
    if names == ["all"]:
        names = [b.name for b in BUILDS]
    by_name = {b.name: b for b in BUILDS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; choose from {sorted(by_name)}")
    for name in names:
        build(by_name[name])
    if args.print_dir:
        print(BIN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
