#!/usr/bin/env python3
"""deployguard beside its peers, on the same inputs, in one run.

* rego-cpp in-process (deployguard's embedded engine, evaluation only);
* the same policies compiled by ``opa build -t wasm``, in-process (the wasm engine);
* a real OPA server evaluating the same Rego and data through its REST API
  (``opa run --server policies/``; no deployguard in the path), on the very policy
  inputs deployguard builds (facts included): sequential latency and the
  maximum rate with 16 keep-alive connections (bench/loadgen.py);
* deployguard serving the same workloads over HTTPS (embedded engine, every request
  unique so the decision memo never helps): the maximum rate;
* Gatekeeper's ``gator`` (scripts/provision_tools.py gator) with ConstraintTemplates
  equivalent to our digest pinning and allowed registries rules, on the same
  workloads as Kubernetes objects: ``gator bench`` when the build has it.

  .venv/bin/python bench/peers.py [--inputs 200] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.loadgen import cycle, run, unique_bodies  # noqa: E402
from tests.conftest import tool, tools_bin  # noqa: E402
from tests.processes import Process, free_port, http_ok  # noqa: E402
from webhook.admission import parse_review  # noqa: E402
from webhook.config import Settings  # noqa: E402
from webhook.engines.embedded import EmbeddedEngine  # noqa: E402
from webhook.engines.wasm import WasmEngine  # noqa: E402
from webhook.facts.setup import build_gatherers  # noqa: E402
from webhook.memo import DecisionMemo  # noqa: E402
from webhook.observe.decision_log import DecisionLog  # noqa: E402
from webhook.policy_bundle import load_bundle  # noqa: E402
from webhook.reviewer import Reviewer  # noqa: E402
from webhook.tls import generate_certificates  # noqa: E402

ALLOWED = ["docker.io", "ghcr.io", "quay.io", "registry.k8s.io"]

DIGEST_TEMPLATE = {
    "apiVersion": "templates.gatekeeper.sh/v1",
    "kind": "ConstraintTemplate",
    "metadata": {"name": "k8sdigestpinning"},
    "spec": {
        "crd": {"spec": {"names": {"kind": "K8sDigestPinning"}}},
        "targets": [
            {
                "target": "admission.k8s.gatekeeper.sh",
                "rego": """
package k8sdigestpinning

containers[c] { c := input.review.object.spec.template.spec.containers[_] }
containers[c] { c := input.review.object.spec.template.spec.initContainers[_] }
containers[c] { c := input.review.object.spec.containers[_] }

violation[{"msg": msg}] {
  c := containers[_]
  not contains(c.image, "@sha256:")
  msg := sprintf("container %v image %v is not pinned by digest", [c.name, c.image])
}
""",
            }
        ],
    },
}

REGISTRY_TEMPLATE = {
    "apiVersion": "templates.gatekeeper.sh/v1",
    "kind": "ConstraintTemplate",
    "metadata": {"name": "k8sallowedregistries"},
    "spec": {
        "crd": {
            "spec": {
                "names": {"kind": "K8sAllowedRegistries"},
                "validation": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {"registries": {"type": "array", "items": {"type": "string"}}},
                    }
                },
            }
        },
        "targets": [
            {
                "target": "admission.k8s.gatekeeper.sh",
                "rego": """
package k8sallowedregistries

containers[c] { c := input.review.object.spec.template.spec.containers[_] }
containers[c] { c := input.review.object.spec.containers[_] }

registry(image) = r {
  parts := split(image, "/")
  count(parts) > 1
  contains(parts[0], ".")
  r := parts[0]
}
registry(image) = "docker.io" {
  parts := split(image, "/")
  not contains(parts[0], ".")
}
registry(image) = "docker.io" {
  count(split(image, "/")) == 1
}

allowed(r) { r == input.parameters.registries[_] }

violation[{"msg": msg}] {
  c := containers[_]
  r := registry(c.image)
  not allowed(r)
  msg := sprintf("container %v image %v comes from registry %v, which is not allowed", [c.name, c.image, r])
}
""",
            }
        ],
    },
}


def constraints() -> list[dict[str, Any]]:
    match = {"kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}, {"apiGroups": [""], "kinds": ["Pod"]}]}
    return [
        {"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sDigestPinning",
         "metadata": {"name": "digest-pinning"}, "spec": {"match": match}},
        {"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sAllowedRegistries",
         "metadata": {"name": "allowed-registries"}, "spec": {"match": match, "parameters": {"registries": ALLOWED}}},
    ]  # fmt: skip


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


class NullLog(io.StringIO):
    def write(self, s: str) -> int:
        return len(s)


async def build_inputs(body: bytes, n: int) -> tuple[EmbeddedEngine, list[dict[str, Any]], list[dict[str, Any]]]:
    """The policy inputs deployguard builds for ``n`` distinct workloads, and those workloads."""
    engine = EmbeddedEngine()
    await engine.load(load_bundle(REPO / "policies"))
    settings = Settings()
    reviewer = Reviewer(engine, admission=settings.admission, policy=settings.policy,
                        log=DecisionLog(None, stream=NullLog()), gatherers=build_gatherers(settings),
                        memo=DecisionMemo(0))  # fmt: skip
    inputs, objects = [], []
    for i in range(n):
        doc = orjson.loads(unique_bodies(body)(i))
        outcome = await reviewer.review(parse_review(doc))
        assert outcome.policy_input is not None
        inputs.append(outcome.policy_input)
        objects.append(doc["request"]["object"])
    return engine, inputs, objects


def embedded_eval(engine: EmbeddedEngine | WasmEngine, inputs: list[dict[str, Any]]) -> dict[str, float]:
    walls, cpus = [], []
    for policy_input in inputs:
        w, c = time.perf_counter(), time.process_time()
        engine.evaluate_sync(policy_input)
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    return {"p50_ms": round(statistics.median(walls) * 1000, 3), "cpu_p50_ms": round(statistics.median(cpus) * 1000, 3),
            "rps_one_core_cpu": round(1 / statistics.median(cpus), 1)}  # fmt: skip


TWO_RULES = """package deployguard.bench

import rego.v1

violations := data.deployguard.rules.digest_pinning.violation | data.deployguard.rules.allowed_registries.violation
"""


def embedded_two_rules(inputs: list[dict[str, Any]]) -> dict[str, float]:
    """Only the rules gator's templates mirror (digest pinning, allowed registries): the like-for-like figure."""
    from webhook.engines.embedded import DATA_SHAPE, _interpreter, parse_output, reordered, set_input
    from webhook.engines.renumbering import compact_locals

    bundle = load_bundle(REPO / "policies")
    keep = (
        "deployguard/lib.rego",
        "deployguard/rules/digest_pinning.rego",
        "deployguard/rules/allowed_registries.rego",
    )
    interp = _interpreter()
    interp.add_data(reordered(bundle.data, DATA_SHAPE))
    for path, source in bundle.modules:
        if path in keep:
            interp.add_module(path, source)
    interp.add_module("bench.rego", TWO_RULES)
    # as the engine serves a revision: locals renumbered, input built node by node
    compiled = compact_locals(interp.build(None, ["deployguard/bench/violations"]))
    runner = _interpreter()
    from regopy import rego_shared

    walls, cpus = [], []
    for policy_input in inputs:
        w, c = time.perf_counter(), time.process_time()
        set_input(runner, policy_input)
        out = rego_shared.rego_bundle_query_entrypoint(runner._impl, compiled._impl, "deployguard/bench/violations")
        try:
            value = parse_output(rego_shared.rego_output_ok(out), rego_shared.rego_output_string(out), "violations")
        finally:
            rego_shared.rego_free_output(out)
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
        assert value, "digest pinning must fire on the bench input"
    return {"p50_ms": round(statistics.median(walls) * 1000, 3), "cpu_p50_ms": round(statistics.median(cpus) * 1000, 3)}


def opa_rest(work: Path, inputs: list[dict[str, Any]], duration: float) -> dict[str, float]:
    port = free_port()
    opa = Process("opa-peer", [str(tool("opa")), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level",
                               "error", "--ignore", "*_test.rego", str(REPO / "policies")], work)  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1/data/deployguard/decision"
    try:
        opa.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 30, "healthy")
        bodies = [orjson.dumps({"input": i}) for i in inputs]
        walls = []
        with httpx.Client() as client:
            first = client.post(url, content=bodies[0]).json()
            assert "deny" in first.get("result", {}), f"OPA did not decide: {first}"
            for body in bodies:
                started = time.perf_counter()
                client.post(url, content=body, headers={"content-type": "application/json"}).raise_for_status()
                walls.append(time.perf_counter() - started)
        load = run(url, cycle(bodies), rate=0, duration=duration, connections=16)
        return {"p50_ms": round(statistics.median(walls) * 1000, 3), "p99_ms": round(pct(walls, 99) * 1000, 3),
                "max_rps": load.rps, "errors": load.errors}  # fmt: skip
    finally:
        opa.stop()


def deployguard_https(work: Path, body: bytes, duration: float) -> dict[str, float]:
    certs = generate_certificates(work / "certs", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    port = free_port()
    deployguard = str(Path(sys.executable).parent / "deployguard")
    proc = Process("deployguard-peer", [deployguard, "serve", "--host", "127.0.0.1", "--port", str(port), "--cert",
                                        str(certs.cert), "--key", str(certs.key), "--policies",
                                        str(REPO / "policies")], work)  # fmt: skip
    try:
        proc.wait_until(lambda: http_ok(f"https://127.0.0.1:{port}/readyz", cafile=certs.ca_cert), 60, "ready")
        url = f"https://127.0.0.1:{port}/validate"
        run(url, unique_bodies(body), rate=0, duration=2, connections=16, cafile=certs.ca_cert)  # warm up
        load = run(url, lambda i: unique_bodies(body)(10**6 + i), rate=0, duration=duration, connections=16,
                   cafile=certs.ca_cert)  # fmt: skip
        return {"max_rps": load.rps, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "errors": load.errors}
    finally:
        proc.stop()


def gator(work: Path, objects: list[dict[str, Any]], iterations: int) -> dict[str, Any]:
    binary = tools_bin() / "gator"
    if not binary.exists():
        return {"skipped": f"gator is not built ({binary}); run: python3 scripts/provision_tools.py gator"}
    suite = work / "gator"
    suite.mkdir(exist_ok=True)
    (suite / "templates.yaml").write_text(yaml.safe_dump_all([DIGEST_TEMPLATE, REGISTRY_TEMPLATE]))
    (suite / "constraints.yaml").write_text(yaml.safe_dump_all(constraints()))
    (suite / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    helptext = subprocess.run([str(binary), "--help"], capture_output=True, text=True).stdout
    files = [
        "-f",
        str(suite / "templates.yaml"),
        "-f",
        str(suite / "constraints.yaml"),
        "-f",
        str(suite / "objects.yaml"),
    ]
    if re.search(r"^\s+bench\b", helptext, re.MULTILINE):
        argv = [str(binary), "bench", "-f", str(suite), "--engine", "rego", "--iterations", str(iterations),
                "--output", "json"]  # fmt: skip
        out = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            return {"command": " ".join(argv), "rc": out.returncode, "error": (out.stdout + out.stderr)[-2000:]}
        return {"command": "gator bench --engine rego", "objects": len(objects), "iterations": iterations,
                "report": json.loads(out.stdout)}  # fmt: skip
    started = time.perf_counter()
    out = subprocess.run([str(binary), "test", *files], capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    return {"command": "gator test", "objects": len(objects), "seconds": round(elapsed, 2),
            "ms_per_object": round(elapsed * 1000 / len(objects), 3), "rc": out.returncode,
            "violations": out.stdout.count("not pinned by digest")}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--gator-iterations", type=int, default=200)
    parser.add_argument("--body", type=Path, default=REPO / "examples/admission-review.json")
    args = parser.parse_args()
    body = args.body.read_bytes()
    work = Path(tempfile.mkdtemp(prefix="dg-peers-"))
    engine, inputs, objects = asyncio.run(build_inputs(body, args.inputs))
    results: dict[str, Any] = {"inputs": len(inputs), "input_bytes": len(orjson.dumps(inputs[0]))}
    results["embedded (rego-cpp, in-process)"] = embedded_eval(engine, inputs)
    results["embedded, the 2 gator-equivalent rules only"] = embedded_two_rules(inputs)
    wasm = WasmEngine(str(tool("opa")))
    asyncio.run(wasm.load(load_bundle(REPO / "policies")))
    results["wasm (opa build -t wasm, in-process)"] = embedded_eval(wasm, inputs)
    results["opa server REST (no deployguard)"] = opa_rest(work, inputs, args.duration)
    results["deployguard HTTPS, embedded, unique"] = deployguard_https(work, body, args.duration)
    results["gator"] = gator(work, objects, args.gator_iterations)
    emb, opa = results["embedded (rego-cpp, in-process)"], results["opa server REST (no deployguard)"]
    dg = results["deployguard HTTPS, embedded, unique"]
    print(json.dumps(results, indent=1))
    print(f"OPA REST p50 / embedded eval p50 (wall): {opa['p50_ms'] / emb['p50_ms']:.2f}")
    wasm_eval = results["wasm (opa build -t wasm, in-process)"]
    print(f"wasm eval p50 / embedded eval p50 (wall): {wasm_eval['p50_ms'] / emb['p50_ms']:.2f}")
    print(f"deployguard HTTPS max rps / OPA REST max rps: {dg['max_rps'] / opa['max_rps']:.2f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
