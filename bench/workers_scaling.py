#!/usr/bin/env python3
"""Two workers against one, interleaved: does a second process add a second core's worth?

Starts ``deployguard serve`` with one worker, with two, and with two without connection
rotation (``server.max_requests_per_connection: 0``), all at once, then runs ``wrk``
against each in turn for ``--rounds`` rounds, so that a slow spell of a shared machine
falls on every configuration alike rather than on whichever ran last. Prints per round
and the medians: requests/s, the cores the server processes and wrk used, requests per
server core, and the ratios to one worker. A report, never a timed assertion.

    .venv/bin/python bench/workers_scaling.py [--rounds 4] [--duration 5] [--connections 16] [--unique]
"""

from __future__ import annotations

import argparse
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

CONFIGS = {
    "1 worker": (1, 1000),
    "2 workers": (2, 1000),
    "2 workers, no connection rotation": (2, 0),
}


def start(work: Path, certs: object, workers: int, max_requests: int) -> tuple[subprocess.Popen[bytes], int]:
    config = work / f"config-{workers}-{max_requests}.yaml"
    config.write_text(f"server:\n  max_requests_per_connection: {max_requests}\n")
    port = free_port()
    argv = [str(Path(sys.executable).parent / "deployguard"), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--cert", str(certs.cert), "--key", str(certs.key), "--workers", str(workers),  # type: ignore[attr-defined]
            "--policies", str(REPO / "policies"), "--config", str(config)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not http_ok(f"https://127.0.0.1:{port}/healthz", cafile=certs.ca_cert):  # type: ignore[attr-defined]
        if time.monotonic() > deadline or proc.poll() is not None:
            sys.exit(f"deployguard serve --workers {workers} did not start")
        time.sleep(0.2)
    time.sleep(2)  # the second worker binds on its own
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--unique", action="store_true", help="every request names another workload (memo misses)")
    parser.add_argument("--body", type=Path, default=REPO / "examples/admission-review.json")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench needs wrk (Debian: apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="dg-workers-"))
    certs = generate_certificates(work / "certs", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    script = work / "post.lua"
    script.write_text(LUA)
    servers = {name: start(work, certs, *config) for name, config in CONFIGS.items()}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    try:
        for _, port in servers.values():  # warm up
            wrk(f"https://127.0.0.1:{port}/validate", args.body, 2, args.connections, script, args.unique)
        for round_ in range(args.rounds):
            for name, (proc, port) in servers.items():
                url = f"https://127.0.0.1:{port}/validate"
                result = wrk(url, args.body, args.duration, args.connections, script, args.unique, server=proc.pid)
                results[name].append(result)
                print(f"round {round_ + 1} {name:36} {result['rps']:8.0f} req/s  server {result['server_cores']:.2f}"
                      f" cores  wrk {result['client_cores']:.2f}  {result['rps_per_server_core']:.0f} per server core",
                      flush=True)  # fmt: skip
    finally:
        for proc, _ in servers.values():
            os.killpg(proc.pid, signal.SIGTERM)
        shutil.rmtree(work, ignore_errors=True)
    medians = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in results.items()}
    one = medians["1 worker"]
    print(f"\nmedians of {args.rounds} rounds ({'unique' if args.unique else 'repeated'} reviews, "
          f"{args.connections} connections):")  # fmt: skip
    for name, m in medians.items():
        print(f"  {name:36} {m['rps']:8.0f} req/s  {m['rps'] / one['rps']:.2f}x one worker;  server"
              f" {m['server_cores']:.2f} cores, wrk {m['client_cores']:.2f};  per server core"
              f" {m['rps_per_server_core']:.0f} ({m['rps_per_server_core'] / one['rps_per_server_core']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
