#!/usr/bin/env python3
"""AdmissionReviews/s and latency over HTTPS on loopback, all targets in one run.

Targets: a bare FastAPI echo endpoint (the ceiling), deployguard on the embedded
engine (one process, and ``--workers 2``), deployguard on a real OPA server. "repeated" sends one AdmissionReview over
and over (a rollout's repeats: answered from the decision memo); "unique" names
another workload in every request (the memo never hits: the engine's real cost). Load comes from ``wrk`` (C, keep-alive)
so the client costs little of the two cores. Prints a table and the ratios to the
ceiling; never used as a timed assertion.

After each maximum-rate run, bench/loadgen.py holds half of that rate (open loop,
latency counted from when each request was due) and reports p50/p99 there: wrk
cannot fix a rate. On a 2-core machine the load generators share the cores with the
server, so "2 workers vs 1" is a lower bound of what two dedicated cores give.

    .venv/bin/python bench/http_throughput.py [--duration 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.loadgen import cycle, run  # noqa: E402
from tests.conftest import tool  # noqa: E402
from tests.processes import Process, free_port, http_ok  # noqa: E402
from webhook.tls import generate_certificates  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("DG_BODY"), "r")
wrk.body = f:read("*a")
f:close()
if os.getenv("DG_UNIQUE") == "1" then
  -- worst case for the decision memo: every request names another workload
  local n = 0
  request = function()
    n = n + 1
    local body = string.gsub(wrk.body, '"name": "web"', '"name": "web-' .. n .. '"')
    return wrk.format(nil, nil, nil, body)
  end
end
"""


def wrk(url: str, body: Path, duration: int, connections: int, script: Path, unique: bool) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, env={**os.environ, "DG_BODY": str(body), "DG_UNIQUE": str(int(unique))},
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    result = {"rps": rps}
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if m:
            value, unit = float(m.group(1)), m.group(2)
            result[f"p{pct}_ms"] = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    return result


def _burn(seconds: float, out: Any) -> None:
    started, cpu = time.monotonic(), time.process_time()
    while time.monotonic() - started < seconds:
        pass
    out.put(time.process_time() - cpu)


def available_cores(seconds: float = 2.0) -> float:
    """How many cores two busy processes actually get now: other load on a shared machine shows here."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_burn, args=(seconds, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    total = sum(out.get() for _ in procs)
    for proc in procs:
        proc.join()
    return round(total / seconds, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--body", type=Path, default=REPO / "examples/admission-review.json")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench needs wrk (Debian: apt-get install wrk)")
    cores_before = available_cores()
    work = Path(tempfile.mkdtemp(prefix="dg-bench-"))
    certs = generate_certificates(work / "certs", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    script = work / "post.lua"
    script.write_text(LUA)
    python = sys.executable
    deployguard = str(Path(python).parent / "deployguard")
    tls = ["--cert", str(certs.cert), "--key", str(certs.key)]
    opa_port = free_port()
    opa = Process("opa", [str(tool("opa")), "run", "--server", "--addr", f"127.0.0.1:{opa_port}",
                          "--log-level", "error"], work)
    opa.wait_until(lambda: http_ok(f"http://127.0.0.1:{opa_port}/health"), 30, "healthy")
    targets: list[tuple[str, list[str]]] = [
        ("echo (ceiling)", [python, "-m", "uvicorn", "bench.echo_app:app", "--host", "127.0.0.1", "--port", "{port}",
                            "--ssl-certfile", str(certs.cert), "--ssl-keyfile", str(certs.key), "--log-level",
                            "warning", "--no-access-log"]),
        ("deployguard embedded", [deployguard, "serve", "--host", "127.0.0.1", "--port", "{port}", *tls,
                                  "--policies", str(REPO / "policies")]),
        ("deployguard embedded x2 workers", [deployguard, "serve", "--host", "127.0.0.1", "--port", "{port}", *tls,
                                            "--policies", str(REPO / "policies"), "--workers", "2"]),
        ("deployguard opa", [deployguard, "serve", "--host", "127.0.0.1", "--port", "{port}", *tls,
                             "--policies", str(REPO / "policies"), "--engine", "opa",
                             "--opa-url", f"http://127.0.0.1:{opa_port}"]),
    ]
    results: dict[str, dict[str, float]] = {}
    try:
        for name, argv in targets:
            port = free_port()
            proc = Process(name.split()[0] + str(port), [a.replace("{port}", str(port)) for a in argv], work,
                           env={"PYTHONPATH": str(REPO)})
            try:
                proc.wait_until(lambda p=port: http_ok(f"https://127.0.0.1:{p}/healthz", cafile=certs.ca_cert), 60,
                                "serving")
                url = f"https://127.0.0.1:{port}/validate"
                wrk(url, args.body, 2, args.connections, script, False)  # warm up
                results[f"{name}, repeated"] = wrk(url, args.body, args.duration, args.connections, script, False)
                half = results[f"{name}, repeated"]["rps"] / 2
                fixed = run(url, cycle([args.body.read_bytes()]), rate=half, duration=args.duration,
                            connections=args.connections, cafile=certs.ca_cert)  # fmt: skip
                results[f"{name}, repeated"].update(half_rate=half, half_p50_ms=fixed.p50_ms, half_p99_ms=fixed.p99_ms,
                                                    half_errors=fixed.errors)  # fmt: skip
                if not name.startswith("echo"):
                    results[f"{name}, unique"] = wrk(url, args.body, args.duration, args.connections, script, True)
            finally:
                proc.stop()
    finally:
        opa.stop()
    ceiling = results["echo (ceiling), repeated"]["rps"]
    print(f"\ncores two busy processes got before / after the run: {cores_before} / {available_cores()}")
    print(f"\n{'target':44} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs echo':>8}"
          f" {'p99 @ half rate':>16}")
    for name, r in results.items():
        half = f"{r['half_p99_ms']:8.2f} @ {r['half_rate']:.0f}/s" if "half_p99_ms" in r else ""
        print(f"{name:44} {r['rps']:9.0f} {r.get('p50_ms', 0):8.2f} {r.get('p90_ms', 0):8.2f} "
              f"{r.get('p99_ms', 0):8.2f} {r['errors']:7.0f} {r['rps'] / ceiling:8.2f} {half:>16}")
    one, two = results.get("deployguard embedded, repeated"), results.get("deployguard embedded x2 workers, repeated")
    if one and two:
        unique_two = results["deployguard embedded x2 workers, unique"]["rps"]
        unique_one = results["deployguard embedded, unique"]["rps"]
        print(f"2 workers / 1 worker: repeated {two['rps'] / one['rps']:.2f}x, unique {unique_two / unique_one:.2f}x")
    print(json.dumps(results))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
