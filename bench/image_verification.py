"""Signature verification latency, cold vs warm cache, and review throughput with 10 images.

Real components: go-containerregistry's registry on loopback, images pushed by crane,
classic cosign signatures made by the cosign CLI. Prints ratios measured in one run.

    .venv/bin/python -m bench.image_verification [--images 10] [--rounds 20] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from tests.conftest import POLICIES
from tests.factories import admission_review, workload
from tests.oci import LocalRegistry, cosign_sign, generate_key, image_settings, push_image
from tests.unit.conftest import CapturedLog
from webhook.admission import parse_review
from webhook.config import AdmissionSettings, ImagePolicy, ImageSettings, PolicySettings, SigningAuthority
from webhook.engines.embedded import EmbeddedEngine
from webhook.facts.images import ImageFacts
from webhook.policy_store import PolicyStore
from webhook.reviewer import Reviewer


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(values) * 1000:8.2f} ms   p95 {p95 * 1000:8.2f} ms"


async def _verify_all(gatherer: ImageFacts, images: list[str]) -> float:
    started = time.perf_counter()
    facts = await gatherer.facts_for(images)
    elapsed = time.perf_counter() - started
    bad = [i for i, f in facts.items() if f["status"] != "ok" or f["policies"][0]["verified"] != ["release"]]
    if bad:
        raise SystemExit(f"verification failed for {bad}: {facts[bad[0]]}")
    return elapsed


async def main(n_images: int, rounds: int, requests: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    registry = LocalRegistry(work / "logs")
    try:
        key = generate_key(work, "release")
        images = []
        for i in range(n_images):
            digest = push_image(registry, f"shop/app{i}", "v1", work)
            cosign_sign(key, f"{registry.host}/shop/app{i}@{digest}")
            images.append(f"{registry.host}/shop/app{i}@{digest}")
        settings: ImageSettings = image_settings(
            registry.host,
            (SigningAuthority(name="release", key=key.public),),
            (ImagePolicy(name="shop", images=("*/shop/*",), authorities=("release",)),),
        )
        print(f"{n_images} signed images per request, registry {registry.host}, {rounds} rounds")

        cold, warm = [], []
        for _ in range(rounds):
            gatherer = ImageFacts(settings, budget_seconds=30)  # empty caches, new connections
            try:
                cold.append(await _verify_all(gatherer, images))
                warm.append(await _verify_all(gatherer, images))
            finally:
                await gatherer.client.aclose()
        print(f"cold cache (resolve + fetch + verify {n_images} images concurrently): {_ms(cold)}")
        print(f"warm cache (same digests, same authorities):                   {_ms(warm)}")
        print(f"cold / warm: {statistics.median(cold) / statistics.median(warm):.0f}x")

        engine = EmbeddedEngine()
        store = PolicyStore(POLICIES, engine)
        if not await store.reload():
            raise SystemExit(f"policies did not load: {store.last_error}")
        gatherer = ImageFacts(settings, budget_seconds=30)
        reviewer = Reviewer(
            engine, admission=AdmissionSettings(), policy=PolicySettings(), log=CapturedLog(), gatherers=[gatherer]
        )
        # Distinct workload names: no decision-memo hits, every request is evaluated.
        reviews = [
            parse_review(admission_review(workload("Deployment", *images, name=f"web{i}"))) for i in range(requests)
        ]
        await reviewer.review(reviews[0])  # warm the verdict cache
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(reviewer.review(r) for r in reviews))
        elapsed = time.perf_counter() - started
        print(f"reviews with {n_images} images, warm verdict cache, no memo hits: {requests / elapsed:8.1f} requests/s")
        for phase in ("facts.images", "evaluate", "total"):
            values = [o.timings[phase] for o in outcomes]
            print(f"  {phase:13s} per review (under concurrency): {_ms(values)}")
        sequential = []
        for i in range(50):  # new names again: evaluated, not answered from the memo
            review = parse_review(admission_review(workload("Deployment", *images, name=f"seq{i}")))
            sequential.append((await reviewer.review(review)).timings)
        for phase in ("facts.images", "evaluate", "total"):
            print(f"  {phase:13s} per review (one at a time):     {_ms([t[phase] for t in sequential])}")
        await gatherer.client.aclose()
    finally:
        registry.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.images, args.rounds, args.requests))
