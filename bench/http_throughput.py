#!/usr/bin/env python3
"""AdmissionReviews/s and latency over HTTPS on loopback, all targets in one run.

Targets: a bare FastAPI echo endpoint (the ceiling), deployguard on the embedded
engine (one process, and ``--workers 2``), deployguard on a real OPA server. "repeated" sends one AdmissionReview over
and over (a rollout's repeats: answered from the decision memo); "unique" names
another workload in every request (the memo never hits: the engine's real cost). Load comes from ``wrk`` (C, keep-alive)
so the client costs little of the two cores. Prints a table and the ratios to the
ceiling; never used as a timed assertion.

After each maximum-rate run, an open-loop client holds half of that rate and
reports p50/p90/p99/max there (wrk cannot fix a rate): ``vegeta`` (Go, built by
``python3 scripts/provision_tools.py vegeta``) when it is provisioned, else
bench/loadgen.py; ``--half-rate-client vegeta,loadgen`` runs both on the same
server for an A/B. Both are open loop: a request goes out when due whatever the
server is doing, and the time it waits for one of the ``--connections``
connections counts in its latency, so a stalled server shows up instead of
slowing the client down (no coordinated omission). The "cores" columns are the CPU
the client itself used: vegeta is not the cheaper one (about 0.4 of a core at 2,000
to 3,000 requests/s, loadgen about 0.3) but its latency floor is lower (p50 about
0.5 ms against the echo, loadgen about 1 ms), and it is a tool others know. The
echo's figure at half rate is the floor of client + uvicorn + TLS on this machine:
compare the others to it. On a 2-core machine the load generators share the cores
with the server, so "2 workers vs 1" is a lower bound of what two dedicated cores
give, and one stall (another tenant, a full GC in the server) moves the p99 of a
short run: look at max and at the "other" cores under the table.

    .venv/bin/python bench/http_throughput.py [--duration 10] [--connections 16]
        [--only echo,embedded] [--half-rate-client vegeta,loadgen]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.loadgen import cycle, run  # noqa: E402
from tests.conftest import tool, tools_bin  # noqa: E402
from tests.processes import Process, free_port, http_ok  # noqa: E402
from webhook.tls import generate_certificates  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("DG_BODY"), "r")
wrk.body = f:read("*a")
f:close()
if os.getenv("DG_UNIQUE") == "1" then
  -- worst case for the decision memo: every request names another workload (DG_START: a
  -- fresh offset per run, so a later run does not repeat, and hit, an earlier run's names)
  local n = tonumber(os.getenv("DG_START") or "0")
  request = function()
    n = n + 1
    local body = string.gsub(wrk.body, '"name": "web"', '"name": "web-' .. n .. '"')
    return wrk.format(nil, nil, nil, body)
  end
end
"""

# --only names -> the table's target names
TARGETS = {
    "echo": "echo (ceiling)",
    "embedded": "deployguard embedded",
    "embedded-x2": "deployguard embedded x2 workers",
    "wasm": "deployguard wasm",
    "opa": "deployguard opa",
}
CLIENTS = ("vegeta", "loadgen")
PERCENTILES = {"p50": "50th", "p90": "90th", "p95": "95th", "p99": "99th", "max": "max"}  # ours -> vegeta report's


_STARTS = itertools.count(0, 10_000_000)  # per wrk run: names web-<start+1>, web-<start+2>, ...


def wrk(
    url: str,
    body: Path,
    duration: int,
    connections: int,
    script: Path,
    unique: bool,
    server: int | None = None,
    prefix: Sequence[str] = (),
) -> dict[str, float]:
    """One wrk run; with ``server`` (its process group), also the cores the client and the server used.

    ``prefix`` runs wrk under another command (``chrt --batch 0``: a scheduling policy)."""
    client_cpu, server_cpu, started = children_cpu(), group_cpu(server) if server else 0.0, time.monotonic()
    switches = group_switches(server) if server else 0
    out = subprocess.run(
        [*prefix, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        env={**os.environ, "DG_BODY": str(body), "DG_UNIQUE": str(int(unique)), "DG_START": str(next(_STARTS))},
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
    if server:
        wall = time.monotonic() - started
        result["client_cores"] = round((children_cpu() - client_cpu) / wall, 2)
        result["server_cores"] = round((group_cpu(server) - server_cpu) / wall, 2)
        result["rps_per_server_core"] = round(rps / max(result["server_cores"], 0.01))
        result["preemptions_per_answer"] = round((group_switches(server) - switches) / max(rps * wall, 1), 3)
    return result


def vegeta_binary() -> Path | None:
    """vegeta as scripts/provision_tools.py built it, else one on PATH."""
    built = tools_bin() / "vegeta"
    if built.exists():
        return built
    found = shutil.which("vegeta")
    return Path(found) if found else None


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


TICK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (user .. steal in /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


def group_cpu(pgid: int) -> float:
    """CPU seconds of the live processes of one process group (a server and its workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def group_switches(pgid: int) -> int:
    """Involuntary context switches of the live processes of one process group, all threads:
    how often the scheduler took a core away from the server (e.g. for the load generator)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/task/[0-9]*/status"):
        try:
            text = status.read_text()
            if int(status.with_name("stat").read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
        except (OSError, IndexError, ValueError):
            continue
        match = re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", text, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total


def half_rate_vegeta(
    binary: Path, url: str, body: Path, rate: int, duration: int, connections: int, cafile: Path, work: Path
) -> dict[str, float]:
    """``vegeta attack`` at a constant rate, then ``vegeta report -type=json``; latencies in ms."""
    targets, results = work / "vegeta-targets.txt", work / "vegeta-results.bin"
    targets.write_text(f"POST {url}\n")
    # -cpus=1 (GOMAXPROCS): the same latencies for ~20 % less client CPU than on both cores; one
    # core of Go does far more than the few thousand requests/s a half rate is here.
    attack = [
        str(binary), "-cpus=1", "attack", "-targets", str(targets), "-body", str(body),
        "-header", "Content-Type: application/json", f"-rate={rate}/1s", f"-duration={duration}s",
        f"-connections={connections}", f"-max-connections={connections}", "-keepalive=true", "-http2=false",
        "-root-certs", str(cafile), "-timeout=10s", "-max-body=0", "-output", str(results),
    ]  # fmt: skip
    cpu = children_cpu()
    attacked = subprocess.run(attack, capture_output=True, text=True)
    cpu = children_cpu() - cpu
    if attacked.returncode != 0:
        sys.exit(f"vegeta attack failed ({attacked.returncode}):\n{attacked.stderr}")
    report = json.loads(
        subprocess.run([str(binary), "report", "-type=json", str(results)], check=True, capture_output=True).stdout
    )
    # nanoseconds; p50..p99 are vegeta's t-digest estimates (within ~1 % of the exact ones here)
    latencies = report["latencies"]
    codes: dict[str, int] = report.get("status_codes") or {}
    ok = sum(n for code, n in codes.items() if 200 <= int(code) < 300)
    if report.get("errors"):
        print(f"vegeta: {report['requests'] - ok} errors, e.g. {report['errors'][:3]}", file=sys.stderr)
    return {
        "rate": float(rate),
        "sent": float(report["requests"]),
        "errors": float(report["requests"] - ok),  # transport errors (code 0), timeouts and non-2xx
        **{f"{key}_ms": round(latencies[field] / 1e6, 3) for key, field in PERCENTILES.items()},
        "client_cores": round(cpu / duration, 2),
    }


def half_rate_loadgen(
    url: str, body: Path, rate: int, duration: int, connections: int, cafile: Path
) -> dict[str, float]:
    cpu = time.process_time()
    fixed = run(url, cycle([body.read_bytes()]), rate=rate, duration=duration, connections=connections, cafile=cafile)
    cpu = time.process_time() - cpu
    return {
        "rate": float(rate),
        "sent": float(fixed.sent),
        "errors": float(fixed.errors),
        "p50_ms": fixed.p50_ms,
        "p90_ms": fixed.p90_ms,
        "p99_ms": fixed.p99_ms,
        "max_ms": fixed.max_ms,
        "client_cores": round(cpu / duration, 2),
    }


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
    total: float = sum(out.get() for _ in procs)
    for proc in procs:
        proc.join()
    return round(total / seconds, 2)


def comma_list(allowed: list[str]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)} (comma separated), not {value!r}")
        return names

    return parse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--body", type=Path, default=REPO / "examples/admission-review.json")
    parser.add_argument(
        "--only",
        type=comma_list(list(TARGETS)),
        default=list(TARGETS),
        help=f"targets to run, comma separated (default: all of {','.join(TARGETS)})",
    )
    parser.add_argument(
        "--half-rate-client",
        type=comma_list(list(CLIENTS)),
        default=None,
        help="open-loop client(s) for the latency at half the maximum rate: vegeta, loadgen, or both for an A/B "
        "(the first fills the half_* keys); default vegeta when provisioned, else loadgen",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench needs wrk (Debian: apt-get install wrk)")
    vegeta = vegeta_binary()
    clients: list[str] = args.half_rate_client or (["vegeta"] if vegeta else ["loadgen"])
    if "vegeta" in clients and vegeta is None:
        sys.exit(f"vegeta is not built ({tools_bin() / 'vegeta'}); run: python3 scripts/provision_tools.py vegeta")
    if args.half_rate_client is None and vegeta is None:
        print("vegeta is not provisioned (python3 scripts/provision_tools.py vegeta): half-rate latency from "
              "bench/loadgen.py", file=sys.stderr)  # fmt: skip
    print(f"half-rate client: {', '.join(f'{c} ({vegeta})' if c == 'vegeta' else c for c in clients)}", flush=True)
    cores_before = available_cores()
    work = Path(tempfile.mkdtemp(prefix="dg-bench-"))
    certs = generate_certificates(work / "certs", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    script = work / "post.lua"
    script.write_text(LUA)
    python = sys.executable
    deployguard = str(Path(python).parent / "deployguard")
    tls = ["--cert", str(certs.cert), "--key", str(certs.key)]
    serve = [
        deployguard,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        *tls,
        "--policies",
        str(REPO / "policies"),
    ]
    opa: Process | None = None
    opa_port = free_port()
    if "opa" in args.only:
        opa = Process(
            "opa",
            [str(tool("opa")), "run", "--server", "--addr", f"127.0.0.1:{opa_port}", "--log-level", "error"],
            work,
        )
        opa.wait_until(lambda: http_ok(f"http://127.0.0.1:{opa_port}/health"), 30, "healthy")
    wasm_config = work / "wasm.yaml"
    wasm_config.write_text(f"policy:\n  opa_binary: {tool('opa')}\n")
    argvs: dict[str, list[str]] = {
        "echo": [python, "-m", "uvicorn", "bench.echo_app:app", "--host", "127.0.0.1", "--port", "{port}",
                 "--ssl-certfile", str(certs.cert), "--ssl-keyfile", str(certs.key), "--log-level", "warning",
                 "--no-access-log"],
        "embedded": serve,
        "embedded-x2": [*serve, "--workers", "2"],
        "wasm": [*serve, "--engine", "wasm", "--config", str(wasm_config)],
        "opa": [*serve, "--engine", "opa", "--opa-url", f"http://127.0.0.1:{opa_port}"],
    }  # fmt: skip
    targets = [(TARGETS[key], argvs[key]) for key in TARGETS if key in args.only]
    results: dict[str, dict[str, Any]] = {}
    try:
        for name, argv in targets:
            port = free_port()
            proc = Process(
                name.split()[0] + str(port),
                [a.replace("{port}", str(port)) for a in argv],
                work,
                env={"PYTHONPATH": str(REPO)},
            )
            try:
                health = f"https://127.0.0.1:{port}/healthz"
                proc.wait_until(lambda: http_ok(health, cafile=certs.ca_cert), 60, "serving")  # noqa: B023
                url = f"https://127.0.0.1:{port}/validate"
                wrk(url, args.body, 2, args.connections, script, False)  # warm up
                result: dict[str, Any] = wrk(
                    url, args.body, args.duration, args.connections, script, False, server=proc.pid
                )
                results[f"{name}, repeated"] = result
                half = max(1, round(result["rps"] / 2))
                for client in clients:
                    busy, served, started = machine_busy(), group_cpu(proc.pid), time.monotonic()
                    if client == "vegeta":
                        assert vegeta is not None
                        fixed = half_rate_vegeta(
                            vegeta, url, args.body, half, args.duration, args.connections, certs.ca_cert, work
                        )
                    else:
                        fixed = half_rate_loadgen(url, args.body, half, args.duration, args.connections, certs.ca_cert)
                    # what the server used, and what neither it nor the client did: other tenants, which
                    # move a short run's p99 on a shared machine (roughly: interrupt accounting blurs it)
                    wall = time.monotonic() - started
                    fixed["server_cores"] = round((group_cpu(proc.pid) - served) / wall, 2)
                    fixed["other_cores"] = round(
                        (machine_busy() - busy) / wall - fixed["server_cores"] - fixed["client_cores"], 2
                    )
                    result.update({f"half_{client}_{key}": value for key, value in fixed.items() if key != "rate"})
                    if client == clients[0]:  # the original keys, from the first client
                        result.update(half_rate=fixed["rate"], half_p50_ms=fixed["p50_ms"], half_p99_ms=fixed["p99_ms"],
                                      half_errors=fixed["errors"], half_client=client)  # fmt: skip
                if not name.startswith("echo"):
                    results[f"{name}, unique"] = wrk(
                        url, args.body, args.duration, args.connections, script, True, server=proc.pid
                    )
            finally:
                proc.stop()
    finally:
        if opa is not None:
            opa.stop()
    echo = results.get("echo (ceiling), repeated")
    print(f"\ncores two busy processes got before / after the run: {cores_before} / {available_cores()}")
    half_heads = "".join(f" {'p99 @ half, ' + c:>19} {'cores':>5}" for c in clients)
    print(
        f"\n{'target':44} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs echo':>8}"
        f" {'p99 @ half rate':>16}{half_heads}"
    )
    for name, r in results.items():
        half = f"{r['half_p99_ms']:8.2f} @ {r['half_rate']:.0f}/s" if "half_p99_ms" in r else ""
        ratio = f"{r['rps'] / echo['rps']:8.2f}" if echo else f"{'-':>8}"
        per_client = "".join(
            f" {r[f'half_{c}_p99_ms']:19.2f} {r[f'half_{c}_client_cores']:5.2f}" if f"half_{c}_p99_ms" in r
            else f" {'':19} {'':5}"
            for c in clients
        )  # fmt: skip
        print(
            f"{name:44} {r['rps']:9.0f} {r.get('p50_ms', 0):8.2f} {r.get('p90_ms', 0):8.2f} "
            f"{r.get('p99_ms', 0):8.2f} {r['errors']:7.0f} {ratio} {half:>16}{per_client}"
        )
    print(f"p99 @ half rate from {clients[0]}; 'cores' is the CPU that client itself used (of {os.cpu_count()});"
          " 'other' below is CPU neither the client nor the server used (other tenants)")  # fmt: skip
    for client in clients:
        rows = [(n, r) for n, r in results.items() if f"half_{client}_p99_ms" in r]
        for name, r in rows:
            print(
                f"  {client:8} {name:40} @ {r['half_rate']:.0f}/s: p50 {r[f'half_{client}_p50_ms']:.2f}"
                f"  p90 {r[f'half_{client}_p90_ms']:.2f}  p99 {r[f'half_{client}_p99_ms']:.2f}"
                f"  max {r[f'half_{client}_max_ms']:.2f} ms, errors {r[f'half_{client}_errors']:.0f}"
                f" of {r[f'half_{client}_sent']:.0f}; cores: client {r[f'half_{client}_client_cores']:.2f}"
                f" server {r[f'half_{client}_server_cores']:.2f} other {r[f'half_{client}_other_cores']:.2f}"
            )
    one, two = results.get("deployguard embedded, repeated"), results.get("deployguard embedded x2 workers, repeated")
    if one and two:
        unique_two = results["deployguard embedded x2 workers, unique"]["rps"]
        unique_one = results["deployguard embedded, unique"]["rps"]
        print(f"2 workers / 1 worker: repeated {two['rps'] / one['rps']:.2f}x, unique {unique_two / unique_one:.2f}x")
        # wrk runs on the same two cores: what the server processes got is what scaled
        per_core = [(two[k] / one[k]) for k in ("rps_per_server_core",) if k in one and k in two]
        if per_core:
            print(
                f"  at the maximum rate wrk used {one['client_cores']:.2f} / {two['client_cores']:.2f} cores and the"
                f" server {one['server_cores']:.2f} / {two['server_cores']:.2f} (1 / 2 workers); requests per"
                f" server core: {one['rps_per_server_core']:.0f} / {two['rps_per_server_core']:.0f}"
                f" ({per_core[0]:.2f}x per core)"
            )
    print(json.dumps(results))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
