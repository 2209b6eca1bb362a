#!/usr/bin/env python3
"""A local Kubernetes control plane with deployguard registered, to try it with kubectl by hand.

    scripts/local_control_plane.py up       # start in the background, print the exports
    eval "$(scripts/local_control_plane.py up)"   # ... and use them in this shell
    scripts/local_control_plane.py status
    scripts/local_control_plane.py down     # stop everything it started

The same launcher as the e2e tier (tests/controlplane.py): etcd, kube-apiserver and
kube-controller-manager on free loopback ports, ``deployguard serve`` with generated
certificates, registered by the ValidatingWebhookConfiguration that ``deployguard render
webhook-config`` prints. State, kubeconfig and logs go to ``.deployguard/local/`` in the
repository (git-ignored). Only ``export`` lines go to stdout; everything else to stderr.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"

# deployguard and the launcher's dependencies live in the repo's virtualenv.
if sys.prefix == sys.base_prefix and VENV_PYTHON.exists():
    os.execv(VENV_PYTHON, [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
from typing import Any  # noqa: E402

from tests.controlplane import LocalControlPlane, ToolMissing, Tools, tools_bin  # noqa: E402
from tests.processes import stop_process_group  # noqa: E402

DEFAULT_DIR = REPO / ".deployguard" / "local"


def say(text: str = "") -> None:
    print(text, file=sys.stderr)


def read_state(directory: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((directory / "state.json").read_text())
    except FileNotFoundError:
        return None
    return state


def running(state: dict[str, Any]) -> list[str]:
    """Names of the recorded processes that still run (and are still ours)."""
    alive = []
    for process in state["processes"]:
        try:
            cmdline = Path(f"/proc/{process['pid']}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if process["argv0"] in cmdline:
            alive.append(process["name"])
    return alive


def exports(state: dict[str, Any]) -> str:
    bin_dir = str(Path(state["kubectl"]).parent)
    return f'export KUBECONFIG={shlex.quote(state["kubeconfig"])}\nexport PATH={shlex.quote(bin_dir)}:"$PATH"\n'


def describe(state: dict[str, Any], directory: Path) -> None:
    kubectl = state["kubectl"]
    rel = os.path.relpath(directory, Path.cwd())
    say(f"""deployguard local control plane ({rel}):
  kube-apiserver  {state["apiserver"]}   (user admin, group system:masters; token in the kubeconfig)
  deployguard     {state["webhook"]}   failurePolicy {state["failure_policy"]}
  decision log    {state["decision_log"]}
  logs            {state["log_dir"]}/
  kubectl         {kubectl}

Use it (the exports are what this command prints on stdout):
  export KUBECONFIG={state["kubeconfig"]}
  export PATH={Path(kubectl).parent}:$PATH     # the provisioned kubectl, not /usr/bin/kubectl
  kubectl create namespace shop
  kubectl apply -f examples/deployment-latest.yaml    # denied by deployguard, with the reason
  kubectl apply -f examples/deployment-pinned.yaml    # created
Stop it:
  {os.path.relpath(Path(__file__).resolve(), Path.cwd())} down""")


def up(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    state = read_state(directory)
    if state is not None:
        alive = running(state)
        if alive and len(alive) == len(state["processes"]):
            say("already up")
            describe(state, directory)
            sys.stdout.write(exports(state))
            return 0
        if alive:
            say(f"partly running ({', '.join(alive)}); run `down` first")
            return 1
    # A fresh cluster every time: stale etcd data would carry old registrations and CA bundles.
    shutil.rmtree(directory, ignore_errors=True)
    try:
        tools = Tools.from_directory(args.tools_bin)
    except ToolMissing as exc:
        say(str(exc))
        return 2
    plane = LocalControlPlane(
        tools,
        work_dir=directory,
        log_dir=directory / "logs",
        controller_manager=not args.no_controller_manager,
        failure_policy=args.failure_policy,
        detached=True,
    )
    controllers = "" if args.no_controller_manager else ", kube-controller-manager"
    say(f"starting etcd, kube-apiserver{controllers} and deployguard…")
    try:
        plane.start(timeout=args.timeout)
    except (RuntimeError, OSError) as exc:
        say(f"the control plane did not start (everything started was stopped again):\n{exc}")
        return 1
    state = {**plane.state(), "failure_policy": args.failure_policy}
    (directory / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    describe(state, directory)
    sys.stdout.write(exports(state))
    return 0


def down(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    state = read_state(directory)
    if state is None:
        say(f"nothing to stop: no {directory / 'state.json'}")
        return 0
    stopped = []
    for process in reversed(state["processes"]):
        if stop_process_group(process["pid"], expect=process["argv0"]):
            stopped.append(process["name"])
    (directory / "state.json").unlink()
    for scratch in ("etcd", "kube-apiserver"):  # data and credentials; logs stay for reading
        shutil.rmtree(directory / scratch, ignore_errors=True)
    say(f"stopped: {', '.join(stopped) or 'nothing was running'}; logs kept in {state['log_dir']}")
    return 0


def status(args: argparse.Namespace) -> int:
    state = read_state(args.dir)
    if state is None:
        say("down")
        return 1
    alive = set(running(state))
    for process in state["processes"]:
        say(f"  {process['name']:<24} pid {process['pid']:<8} {'running' if process['name'] in alive else 'STOPPED'}")
    describe(state, args.dir)
    return 0 if len(alive) == len(state["processes"]) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state, kubeconfig and logs (%(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start everything in the background")
    start.add_argument("--failure-policy", choices=["Fail", "Ignore"], default="Fail")
    start.add_argument("--no-controller-manager", action="store_true", help="no ReplicaSets, no rollout history")
    start.add_argument("--timeout", type=float, default=90, help="seconds to wait for readiness")
    start.add_argument("--tools-bin", type=Path, default=tools_bin(), help="provisioned binaries (%(default)s)")
    commands.add_parser("down", help="stop what `up` started")
    commands.add_parser("status", help="show what runs")
    args = parser.parse_args()
    args.dir = args.dir.resolve()
    handlers = {"up": up, "down": down, "status": status}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
