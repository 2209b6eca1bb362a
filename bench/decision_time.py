#!/usr/bin/env python3
"""In-process decision time, the rollout mix, and memory with 10,000 cached digests.

No HTTP: each request goes parse (orjson + parse_review) -> Reviewer.review (classify,
facts, memo or engine) -> the serialised AdmissionReview answer, with the default
gatherers and the repository's policies. Wall time and this process's CPU time are
both printed: on a shared machine CPU time is the steadier figure (for the OPA engine
most of the work is in the OPA process, so only wall time means anything there).

Sections (all in one run; ratios only between figures of this run):
  * decision p50, warm caches: a repeated request (memo hit) and every request
    unique (memo miss: the engine's real cost), on the embedded engine (rego-cpp), on
    the wasm engine (the policies compiled by ``opa build -t wasm``, run in-process)
    and on a real OPA server (``opa run --server``, as the sidecar);
  * the rollout mix: per image update a Deployment UPDATE, the ReplicaSet CREATE by the
    deployment controller and N Pod CREATEs by the replicaset controller (change
    type "replica"), next to the same number of requests that are all unique;
  * memory: RSS after 10,000 cached digests in the image caches (tag -> digest and
    verdicts) plus 10,000 decisions in the memo, each from a distinct pinned image.

    .venv/bin/python bench/decision_time.py [--requests 300] [--pods 10] [--digests 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import io
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import tool  # noqa: E402
from tests.factories import admission_review, workload  # noqa: E402
from tests.processes import Process, free_port, http_ok  # noqa: E402
from webhook.admission import parse_review  # noqa: E402
from webhook.config import Settings  # noqa: E402
from webhook.engines import PolicyEngine  # noqa: E402
from webhook.engines.embedded import EmbeddedEngine  # noqa: E402
from webhook.engines.opa import OpaEngine  # noqa: E402
from webhook.engines.wasm import WasmEngine  # noqa: E402
from webhook.facts.images import ImageFacts  # noqa: E402
from webhook.facts.setup import build_gatherers  # noqa: E402
from webhook.memo import DecisionMemo  # noqa: E402
from webhook.observe.decision_log import DecisionLog  # noqa: E402
from webhook.policy_bundle import load_bundle  # noqa: E402
from webhook.reviewer import Reviewer  # noqa: E402
from webhook.trust.signatures import AuthorityResult  # noqa: E402

CONTROLLERS = ("system:serviceaccount:kube-system:deployment-controller",
               "system:serviceaccount:kube-system:replicaset-controller")  # fmt: skip


def digest(i: int) -> str:
    return "sha256:" + f"{i:064x}"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rollout(i: int, pods: int) -> list[bytes]:
    """The requests one image update makes: Deployment UPDATE, ReplicaSet CREATE, ``pods`` Pod CREATEs."""
    old = workload("Deployment", f"registry.example/shop/web@{digest(i)}")
    new = workload("Deployment", f"registry.example/shop/web@{digest(i + 1)}")
    new["metadata"]["generation"] = i + 1
    bodies = [orjson.dumps(admission_review(new, operation="UPDATE", old=old))]
    template_hash = f"{i:08x}"[:10]
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid", "controller": True}
    rs = workload("ReplicaSet", f"registry.example/shop/web@{digest(i + 1)}", name=f"web-{template_hash}")
    rs["metadata"]["ownerReferences"] = [owner]
    rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] = template_hash
    review = admission_review(rs)
    review["request"]["userInfo"]["username"] = CONTROLLERS[0]
    bodies.append(orjson.dumps(review))
    for p in range(pods):
        pod = workload("Pod", f"registry.example/shop/web@{digest(i + 1)}", name="")
        rs_owner = {**owner, "kind": "ReplicaSet", "name": f"web-{template_hash}"}
        labels = dict(rs["spec"]["template"]["metadata"]["labels"])
        pod["metadata"] = {"generateName": f"web-{template_hash}-", "namespace": "shop", "labels": labels,
                           "ownerReferences": [rs_owner]}  # fmt: skip
        pod["metadata"]["name"] = ""  # the API server names it after admission (generateName)
        review = admission_review(pod, uid=f"pod-{i}-{p}")
        review["request"]["userInfo"]["username"] = CONTROLLERS[1]
        bodies.append(orjson.dumps(review))
    return bodies


def unique(body: bytes, i: int) -> bytes:
    return body.replace(b'"name": "web"', b'"name": "web-%d"' % i).replace(b'"name":"web"', b'"name":"web-%d"' % i)


async def answer(reviewer: Reviewer, body: bytes) -> tuple[bytes, bool]:
    """parse -> decide -> serialised answer; what the HTTP adapter does around the core."""
    doc = orjson.loads(body)
    outcome = await reviewer.review(parse_review(doc))
    payload = {"apiVersion": doc["apiVersion"], "kind": doc["kind"], "response": outcome.response}
    return orjson.dumps(payload), outcome.memo_hit


async def timed(reviewer: Reviewer, bodies: list[bytes]) -> dict[str, float]:
    walls, cpus, hits = [], [], 0
    for body in bodies:
        w, c = time.perf_counter(), time.process_time()
        _, hit = await answer(reviewer, body)
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
        hits += hit
    return {
        "requests": len(bodies),
        "p50_ms": round(statistics.median(walls) * 1000, 3),
        "p90_ms": round(statistics.quantiles(walls, n=10)[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(walls) * 1000, 3),
        "cpu_p50_ms": round(statistics.median(cpus) * 1000, 3),
        "cpu_total_ms": round(sum(cpus) * 1000, 1),
        "wall_total_ms": round(sum(walls) * 1000, 1),
        "memo_hit_rate": round(hits / len(bodies), 3),
    }


class NullLog(io.StringIO):
    """The decision log's stream, emptied as it goes (its size is not what we measure)."""

    def write(self, s: str) -> int:
        return len(s)


def reviewer_for(engine: PolicyEngine, settings: Settings, memo_entries: int = 4096) -> Reviewer:
    return Reviewer(engine, admission=settings.admission, policy=settings.policy,
                    log=DecisionLog(None, stream=NullLog()), gatherers=build_gatherers(settings),
                    memo=DecisionMemo(memo_entries))  # fmt: skip


async def decision_section(engine: PolicyEngine, body: bytes, n: int) -> dict[str, dict[str, float]]:
    settings = Settings()
    reviewer = reviewer_for(engine, settings)
    await timed(reviewer, [unique(body, -i - 1) for i in range(20)] + [body] * 20)  # warm up
    return {
        "repeated (memo hit)": await timed(reviewer, [body] * n),
        "unique (engine)": await timed(reviewer, [unique(body, i) for i in range(n)]),
    }


async def rollout_section(engine: PolicyEngine, rollouts: int, pods: int) -> dict[str, dict[str, float]]:
    settings = Settings()
    mix = [b for i in range(rollouts) for b in rollout(1000 + 2 * i, pods)]
    worst = [unique(b, 50_000 + i) for i, b in enumerate(mix)]
    # every request unique: a new workload name each time, Pods named as well so none repeats
    worst = [b.replace(b'"name":""', b'"name":"pod-%d"' % i) for i, b in enumerate(worst)]
    mixed = reviewer_for(engine, settings)
    rollout_result = await timed(mixed, mix)
    worst_reviewer = reviewer_for(engine, settings)
    worst_result = await timed(worst_reviewer, worst)
    return {f"rollout mix (1 Deployment + 1 ReplicaSet + {pods} Pods)": rollout_result,
            "every request unique": worst_result}  # fmt: skip


async def memory_section(digests: int) -> dict[str, float]:
    """RSS with ``digests`` cached digests (image caches + decision memo) and the default policies."""
    engine = EmbeddedEngine()
    await engine.load(load_bundle(REPO / "policies"))
    base = rss_mb()
    settings = Settings()
    settings = replace(settings, images=replace(settings.images, enabled=True, pull_secrets=False))
    reviewer = reviewer_for(engine, settings, memo_entries=digests)
    images = next(g for g in reviewer.gatherers if isinstance(g, ImageFacts))
    images.tags = type(images.tags)(max_entries=digests)
    images.verdicts = type(images.verdicts)(max_entries=digests)
    ident = images.client.identity("registry.example")
    for i in range(digests):
        name = f"registry.example/shop/app{i}"
        images.tags.put(("tag", name, "1.0.0", ident), digest(i), 3600)
        images.verdicts.put(("verdict", name, digest(i), (), ident),
                            (AuthorityResult("release-key", True, ""),), 3600)  # fmt: skip
    template = admission_review(workload("Deployment", "x"))
    started = time.perf_counter()
    for i in range(digests):
        review = copy.deepcopy(template)
        review["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] = (
            f"registry.example/shop/app{i}@{digest(i)}"
        )
        review["request"]["name"] = review["request"]["object"]["metadata"]["name"] = f"app{i}"
        await answer(reviewer, orjson.dumps(review))
    filled = rss_mb()
    return {"digests": digests, "memo_entries": len(reviewer.memo), "tag_cache": len(images.tags._entries),
            "verdict_cache": len(images.verdicts._entries), "rss_policies_loaded_mb": round(base, 1),
            "rss_filled_mb": round(filled, 1), "growth_mb": round(filled - base, 1),
            "fill_seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    body = args.body.read_bytes()
    results: dict[str, Any] = {}
    embedded = EmbeddedEngine()
    await embedded.load(load_bundle(REPO / "policies"))
    results["embedded"] = await decision_section(embedded, body, args.requests)
    results["rollout (embedded)"] = await rollout_section(embedded, args.rollouts, args.pods)
    wasm = WasmEngine(str(tool("opa")))
    await wasm.load(load_bundle(REPO / "policies"))
    results["wasm"] = await decision_section(wasm, body, args.requests)
    results["rollout (wasm)"] = await rollout_section(wasm, args.rollouts, args.pods)
    work = Path(tempfile.mkdtemp(prefix="dg-decision-"))
    port = free_port()
    opa = Process("opa", [str(tool("opa")), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level",
                          "error"], work)  # fmt: skip
    try:
        opa.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 30, "healthy")
        engine = OpaEngine(f"http://127.0.0.1:{port}")
        await engine.load(load_bundle(REPO / "policies"))
        results["opa"] = await decision_section(engine, body, args.requests)
        await engine.close()
    finally:
        opa.stop()
    if args.digests:
        results["memory"] = await memory_section(args.digests)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rollouts", type=int, default=20)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--digests", type=int, default=10_000)
    parser.add_argument("--body", type=Path, default=REPO / "examples/admission-review.json")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(f"\n{'scenario':58} {'p50 ms':>8} {'p90 ms':>8} {'cpu p50':>8} {'memo hit':>8}")
    for section, rows in results.items():
        if section == "memory":
            continue
        for name, r in rows.items():
            print(f"{section + ': ' + name:58} {r['p50_ms']:8.3f} {r['p90_ms']:8.3f} {r['cpu_p50_ms']:8.3f} "
                  f"{r['memo_hit_rate']:8.2f}")  # fmt: skip
    emb, opa, wasm = results["embedded"], results["opa"], results["wasm"]
    hit, miss = emb["repeated (memo hit)"], emb["unique (engine)"]
    print(f"embedded engine, unique vs memo hit (p50): {miss['p50_ms'] / hit['p50_ms']:.1f}x")
    print(f"opa engine vs embedded, unique (p50): {opa['unique (engine)']['p50_ms'] / miss['p50_ms']:.2f}x")
    print(f"wasm engine vs embedded, unique (p50): {wasm['unique (engine)']['p50_ms'] / miss['p50_ms']:.2f}x")
    mix, worst = results["rollout (embedded)"].values()
    print(
        f"rollout mix vs every request unique, CPU per request: {worst['cpu_total_ms'] / mix['cpu_total_ms']:.1f}x less"
    )
    if "memory" in results:
        print("memory:", json.dumps(results["memory"]))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
