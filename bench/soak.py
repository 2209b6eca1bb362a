#!/usr/bin/env python3
"""Soak: does ``deployguard serve`` hold its memory under steady load? (no leak)

Starts the webhook (embedded engine, default policies), sends a fixed rate of
AdmissionReviews with bench/loadgen.py for ``--minutes``, every request naming one of
``--names`` workloads (more than the decision memo holds, so the memo fills and
evicts the whole time), and samples the server's RSS every ``--interval`` seconds.
Prints the samples, the growth from the end of the first minute to the end, and the
errors; "flat" means the growth is within ``--tolerance-mb``. A report, not a test.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 50] [--interval 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.loadgen import run  # noqa: E402
from tests.processes import Process, free_port, http_ok  # noqa: E402
from webhook.tls import generate_certificates  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--names", type=int, default=20_000, help="distinct workloads (memo holds 4096)")
    parser.add_argument("--tolerance-mb", type=float, default=10.0)
    parser.add_argument("--body", type=Path, default=REPO / "examples/admission-review.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dg-soak-"))
    certs = generate_certificates(work / "certs", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    port = free_port()
    deployguard = str(Path(sys.executable).parent / "deployguard")
    proc = Process("deployguard", [deployguard, "serve", "--host", "127.0.0.1", "--port", str(port), "--cert",
                                   str(certs.cert), "--key", str(certs.key), "--policies", str(REPO / "policies"),
                                   "--decision-log", str(work / "decisions.jsonl")], work)  # fmt: skip
    body = args.body.read_bytes()
    sent = 0
    samples: list[tuple[float, float]] = []
    errors = 0
    try:
        proc.wait_until(lambda: http_ok(f"https://127.0.0.1:{port}/readyz", cafile=certs.ca_cert), 60, "ready")
        url = f"https://127.0.0.1:{port}/validate"
        started = time.monotonic()
        end = started + args.minutes * 60
        while time.monotonic() < end:
            offset = sent

            def body_for(i: int, offset: int = offset) -> bytes:
                return body.replace(b'"name": "web"', b'"name": "web-%d"' % ((offset + i) % args.names))

            result = run(url, body_for, rate=args.rate, duration=args.interval, connections=4, cafile=certs.ca_cert)
            sent += result.sent
            errors += result.errors
            samples.append((time.monotonic() - started, rss_mb(proc.pid)))
            print(f"t={samples[-1][0]:6.0f} s  rss={samples[-1][1]:7.1f} MB  sent={sent} errors={errors} "
                  f"p99={result.p99_ms} ms", flush=True)  # fmt: skip
    finally:
        proc.stop()
    after_first_minute = next((rss for t, rss in samples if t >= 60), samples[0][1])
    growth = samples[-1][1] - after_first_minute
    verdict = "flat" if abs(growth) <= args.tolerance_mb else "NOT flat"
    print(json.dumps({"minutes": args.minutes, "rate": args.rate, "sent": sent, "errors": errors,
                      "rss_first_mb": samples[0][1], "rss_after_1min_mb": after_first_minute,
                      "rss_end_mb": samples[-1][1], "rss_max_mb": max(r for _, r in samples),
                      "growth_after_1min_mb": round(growth, 1), "verdict": verdict}))  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
