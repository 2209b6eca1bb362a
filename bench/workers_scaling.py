#!/usr/bin/env python3
"""Two workers against one, interleaved: does a second process add a second core's worth?

Starts ``deployguard serve`` with one worker, with two, and with two rotating connections
every 1,000 requests (``server.max_requests_per_connection: 1000``, the default before
rotation by age), all at once, then runs ``wrk``
against each in turn for ``--rounds`` rounds, so that a slow spell of a shared machine
falls on every configuration alike rather than on whichever ran last. Prints per round
and the medians: requests/s, the cores the server processes and wrk used, requests per
server core, involuntary context switches of the server per answer (how often the
scheduler took a core away from it), and the ratios to one worker. A report, never a
timed assertion.

``--connections`` takes a list (``16,32,64``): on a 2-core machine wrk shares the
cores with the workers, and with few connections per worker a worker's queue runs dry
between wrk's sends (an idle wake-up costs more than a queued request), so the ratio
depends on the concurrency; the sweep shows that rather than one chosen point.
``--wrk-prefix`` runs wrk under a scheduling command (``chrt --batch 0``: its wake-ups
stop preempting the workers), to tell preemption apart from the cores wrk takes.

``--cpu-limit 0.8`` gives every server a CFS quota of 0.8 cores per worker (a cgroup, as
a pod's ``resources.limits.cpu``; needs root): one worker gets 0.8 of a core, two get
1.6, and wrk keeps the rest of the machine in both cases. Without it the comparison is
lopsided on a 2-core machine: one worker has a whole core while wrk runs on the other,
but two workers must share both cores with wrk. With the quota the configurations
differ only in the workers and their budget, which is the question asked.

    .venv/bin/python bench/workers_scaling.py [--rounds 4] [--duration 5] [--connections 16,32,64] \\
        [--unique] [--cpu-limit 0.8]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.http_throughput import LUA, wrk  # noqa: E402
from tests.processes import free_port, http_ok  # noqa: E402
from webhook.tls import generate_certificates  # noqa: E402

CONFIGS = {  # workers, server.max_requests_per_connection (rotation by age, 60 s, stays on)
    "1 worker": (1, 0),
    "2 workers": (2, 0),
    "2 workers, rotated per 1,000 requests": (2, 1000),
}


def cpu_cgroup(name: str, cores: float) -> Path:
    """A CPU cgroup whose processes together get at most ``cores`` (a CFS quota, as a pod's
    ``resources.limits.cpu``): cgroup v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``. Needs root."""
    period = 100_000
    unified = Path("/sys/fs/cgroup/cgroup.controllers")
    if unified.exists() and "cpu" in unified.read_text().split():
        subtree = Path("/sys/fs/cgroup/cgroup.subtree_control")
        if "cpu" not in subtree.read_text().split():
            subtree.write_text("+cpu\n")  # children get cpu.max only once the root hands them the controller
        group = Path("/sys/fs/cgroup") / name
        group.mkdir(exist_ok=True)
        (group / "cpu.max").write_text(f"{int(cores * period)} {period}\n")
        return group
    group = Path("/sys/fs/cgroup/cpu") / name
    if not group.parent.is_dir():
        sys.exit("--cpu-limit needs a cgroup CPU controller (v2 cpu.max or v1 /sys/fs/cgroup/cpu)")
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text(f"{period}\n")
    (group / "cpu.cfs_quota_us").write_text(f"{int(cores * period)}\n")
    return group


def remove_cgroup(group: Path) -> None:
    """Remove a cgroup once the workers (which exit after their parent) have left it."""
    deadline = time.monotonic() + 30
    while True:
        try:
            group.rmdir()
            return
        except OSError as error:  # EBUSY while a process is still in it
            if time.monotonic() > deadline:
                print(f"cgroup {group} left behind: {error}", file=sys.stderr)
                return
            time.sleep(0.2)


def start(
    work: Path, certs: object, workers: int, max_requests: int, group: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    config = work / f"config-{workers}-{max_requests}.yaml"
    config.write_text(f"server:\n  max_requests_per_connection: {max_requests}\n")
    port = free_port()
    argv = [str(Path(sys.executable).parent / "deployguard"), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--cert", str(certs.cert), "--key", str(certs.key), "--workers", str(workers),  # type: ignore[attr-defined]
            "--policies", str(REPO / "policies"), "--config", str(config)]  # fmt: skip

    def join_group() -> None:  # in the child, before exec: the workers it spawns inherit the cgroup
        if group is not None:
            (group / "cgroup.procs").write_text(f"{os.getpid()}\n")

    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=join_group)  # fmt: skip
    deadline = time.monotonic() + 60
    while not http_ok(f"https://127.0.0.1:{port}/healthz", cafile=certs.ca_cert):  # type: ignore[attr-defined]
        if time.monotonic() > deadline or proc.poll() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
            sys.exit(f"deployguard serve --workers {workers} did not start")
        time.sleep(0.2)
    time.sleep(2)  # the second worker binds on its own
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", default="16", help="one count or a comma-separated list (a sweep)")
    parser.add_argument("--unique", action="store_true", help="every request names another workload (memo misses)")
    parser.add_argument("--body", type=Path, default=REPO / "examples/admission-review.json")
    parser.add_argument(
        "--cpu-limit",
        type=float,
        default=0.0,
        help="cores per worker (a CFS quota on each server, as a pod's limits.cpu; needs root)",
    )
    parser.add_argument("--wrk-prefix", default="", help='run wrk under a command, e.g. "chrt --batch 0"')
    args = parser.parse_args()
    prefix = args.wrk_prefix.split()
    if not shutil.which("wrk"):
        sys.exit("bench needs wrk (Debian: apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="dg-workers-"))
    certs = generate_certificates(work / "certs", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    script = work / "post.lua"
    script.write_text(LUA)
    counts = [int(c) for c in args.connections.split(",")]
    groups: dict[str, Path | None] = {}
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    results: dict[tuple[int, str], list[dict[str, float]]] = {(c, n): [] for c in counts for n in CONFIGS}
    try:  # servers and cgroups go away however this ends, a server that did not start included
        for index, (name, config) in enumerate(CONFIGS.items()):
            limit = args.cpu_limit * config[0]
            groups[name] = cpu_cgroup(f"dg-bench-{os.getpid()}-{index}", limit) if args.cpu_limit else None
            servers[name] = start(work, certs, *config, groups[name])
        for _, port in servers.values():  # warm up
            wrk(f"https://127.0.0.1:{port}/validate", args.body, 2, counts[0], script, args.unique)
        for round_ in range(args.rounds):
            for connections in counts:
                for name, (proc, port) in servers.items():
                    url = f"https://127.0.0.1:{port}/validate"
                    result = wrk(url, args.body, args.duration, connections, script, args.unique, proc.pid, prefix)
                    results[(connections, name)].append(result)
                    print(f"round {round_ + 1} c{connections:<3} {name:36} {result['rps']:8.0f} req/s  server"
                          f" {result['server_cores']:.2f} cores  wrk {result['client_cores']:.2f}"
                          f"  {result['rps_per_server_core']:.0f} per server core"
                          f"  {result['preemptions_per_answer']:.3f} preemptions per answer", flush=True)  # fmt: skip
    finally:
        for proc, _ in servers.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in servers.values():
            proc.wait(timeout=30)
        for group in groups.values():
            if group is not None:
                remove_cgroup(group)
        shutil.rmtree(work, ignore_errors=True)
    medians = {key: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for key, rs in results.items()}
    print(f"\nmedians of {args.rounds} rounds ({'unique' if args.unique else 'repeated'} reviews); 'vs 1 worker' is the"
          " median of each round's ratio (the two runs of a round are seconds apart: a shared host's speed drifts"
          " less between them than across the whole run):")  # fmt: skip
    print(f"  {'conns':>5}  {'configuration':36} {'req/s':>8}  {'vs 1 worker':>11}  {'server cores':>12}  "
          f"{'wrk cores':>9}  {'per server core':>15}  preemptions per answer")  # fmt: skip
    for connections in counts:
        one = medians[(connections, "1 worker")]
        ones = results[(connections, "1 worker")]
        for name in servers:
            m = medians[(connections, name)]
            rounds = zip(results[(connections, name)], ones, strict=True)
            ratio = statistics.median(r["rps"] / o["rps"] for r, o in rounds)
            print(f"  {connections:>5}  {name:36} {m['rps']:8.0f}  {ratio:10.2f}x  "
                  f"{m['server_cores']:12.2f}  {m['client_cores']:9.2f}  {m['rps_per_server_core']:8.0f} "
                  f"({m['rps_per_server_core'] / one['rps_per_server_core']:.2f}x)  "
                  f"{m['preemptions_per_answer']:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
