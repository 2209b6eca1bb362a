#!/usr/bin/env python3
"""Look for admission reviews that crash the process (rego-cpp aborting or segfaulting).

Children review random hostile AdmissionReviews (``tests/hostile_reviews.py``) through
the real Reviewer and embedded engine, 500 per child; each child writes the body it is
about to review to a file first, so a crash leaves the culprit behind. The parent runs
children with new seeds until the time is up and prints the crashes.

    .venv/bin/python scripts/fuzz_crash.py SECONDS [FIRST_SEED]   (culprits in $TMPDIR/deployguard-fuzz:
    last-SEED.json for a crash, error-SEED-N.json for a review that ended in an engine error)

It found the crash that admission.max_string_bytes now prevents (a ~27,000-character
container name; every seed crashed within 500 reviews before the limit).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = Path(tempfile.gettempdir()) / "deployguard-fuzz"


async def child(seed: int, count: int) -> None:
    import orjson

    from bench.decision_time import NullLog
    from tests.hostile_reviews import HostileReviews
    from webhook.admission import BadReview, parse_review
    from webhook.config import Settings
    from webhook.engines.embedded import EmbeddedEngine
    from webhook.facts.setup import build_gatherers
    from webhook.memo import DecisionMemo
    from webhook.observe.decision_log import DecisionLog
    from webhook.policy_bundle import load_bundle
    from webhook.reviewer import Reviewer

    engine = EmbeddedEngine()
    await engine.load(load_bundle(REPO / "policies"))
    settings = Settings()
    reviewer = Reviewer(engine, admission=settings.admission, policy=settings.policy,
                        log=DecisionLog(None, stream=NullLog()), gatherers=build_gatherers(settings),
                        memo=DecisionMemo(64))
    reviews = HostileReviews(seed)
    last = OUT / f"last-{seed}.json"
    errors = 0
    for i in range(count):
        body = orjson.dumps(reviews.review(i))
        last.write_bytes(body)
        try:
            outcome = await reviewer.review(parse_review(orjson.loads(body)))
            if "rego-cpp" in outcome.decision.message:
                errors += 1
                (OUT / f"error-{seed}-{i}.json").write_bytes(body)
        except BadReview:
            pass
    last.unlink()
    print(f"seed {seed}: {count} reviews, {errors} engine errors")


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(child(int(sys.argv[2]), int(sys.argv[3])))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + float(sys.argv[1])
    seed, crashes = int(sys.argv[2]) if len(sys.argv) > 2 else 1, 0
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, __file__, "--child", str(seed), "500"], capture_output=True, text=True)
        if done.returncode != 0:
            crashes += 1
            culprit = OUT / f"last-{seed}.json"
            print(f"seed {seed}: exit {done.returncode}; culprit {culprit}; {done.stderr[-400:]}", flush=True)
        else:
            print(done.stdout.strip(), flush=True)
        seed += 1
    print(f"crashes: {crashes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
