#!/usr/bin/env python3
"""Look for admission reviews that crash the process (rego-cpp aborting or segfaulting).

Children review random hostile AdmissionReviews (long, escaped, non-ASCII and format-like
strings in every field a submitter controls; broken image references; bad tokens) through
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
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = Path(tempfile.gettempdir()) / "deployguard-fuzz"

NASTY = ['"', "\\", '\\"', '"}], "deny": [], "x": [{"a": "', "\u0000", "\u001f", "\n\r\t\b\f", "\u007f", "\u2028",
         "é", "日本", "😀", "\ud7ff", " ", "", "/", "\\u0041", "%20", "+", "\u202e", "\u200f", "\ufeff", "e\u0301",
         "ｎｇｉｎｘ", "\U0010ffff", "%s%d%v%q", "{", "}", "[", "]", ":", "@", "sha256:", "..", "*", "$", "(", ")",
         "^", "|", "?", "#"]


def rstring(r: random.Random) -> str:
    kind = r.random()
    if kind < 0.3:
        return "".join(r.choice(NASTY) for _ in range(r.randint(0, 6)))
    if kind < 0.5:
        return "".join(chr(r.randint(1, 0x10FFFF)) for _ in range(r.randint(0, 40))).encode(
            "utf-8", "ignore").decode("utf-8", "ignore")
    if kind < 0.65:
        return r.choice([*NASTY, "a", "A", "0", "-", "."]) * r.randint(1, 6000)
    if kind < 0.8:
        return "".join(chr(r.randint(32, 126)) for _ in range(r.randint(0, 300)))
    return r.choice(["web", "nginx", "shop", "app.kubernetes.io/version", "1.2.3", "latest", "true"])


def rimage(r: random.Random) -> str:
    parts = [r.choice(["", "docker.io/", "ghcr.io/", "localhost:5000/", "127.0.0.1/", "[::1]:5000/", "a.b.c/",
                       rstring(r) + "/"])]
    parts.append(r.choice(["nginx", "library/nginx", "a/" * r.randint(1, 300), rstring(r)]))
    if r.random() < 0.6:
        parts.append(":" + r.choice(["latest", "1.2.3", "v1", rstring(r), "1" * r.randint(1, 200)]))
    if r.random() < 0.5:
        parts.append("@" + r.choice(["sha256:" + "a" * 64, "sha256:" + rstring(r), "sha512:" + "b" * 128,
                                     rstring(r)]))
    return "".join(parts)


def rdict(r: random.Random) -> dict[str, str]:
    return {rstring(r): rstring(r) for _ in range(r.randint(0, 4))}


def review(r: random.Random, i: int) -> dict:
    kind = r.choice(["Deployment", "Pod", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"])
    def template() -> dict:
        containers = [{"name": rstring(r), "image": rimage(r)} for _ in range(r.randint(0, 3))]
        spec: dict = {"containers": containers}
        if r.random() < 0.3:
            spec["initContainers"] = [{"name": rstring(r), "image": rimage(r)}]
        if r.random() < 0.1:
            spec["ephemeralContainers"] = [{"name": rstring(r), "image": rimage(r)}]
        return {"metadata": {"labels": rdict(r), "annotations": rdict(r)}, "spec": spec}
    def obj() -> dict:
        t = template()
        meta = {"name": rstring(r), "namespace": rstring(r), "labels": rdict(r), "annotations": rdict(r)}
        if r.random() < 0.2:
            meta["annotations"]["deployguard.io/break-glass"] = rstring(r)
        if kind == "Pod":
            return {"apiVersion": "v1", "kind": "Pod", "metadata": {**meta, **t["metadata"]}, "spec": t["spec"]}
        if kind == "CronJob":
            return {"apiVersion": "batch/v1", "kind": kind, "metadata": meta,
                    "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": t}}}}
        group = "batch/v1" if kind == "Job" else "apps/v1"
        return {"apiVersion": group, "kind": kind, "metadata": meta,
                "spec": {"replicas": r.choice([0, 1, 3, 10**6, -1]), "template": t}}
    op = r.choice(["CREATE", "UPDATE"])
    new = obj()
    group = "" if kind == "Pod" else ("batch" if kind in ("Job", "CronJob") else "apps")
    req = {"uid": f"fuzz-{i}", "kind": {"group": group, "version": "v1", "kind": kind},
           "resource": {"group": group, "version": "v1", "resource": kind.lower() + "s"},
           "namespace": new["metadata"]["namespace"], "name": new["metadata"]["name"], "operation": op,
           "userInfo": {"username": rstring(r), "groups": [rstring(r)]}, "object": new,
           "oldObject": obj() if op == "UPDATE" else None, "dryRun": r.random() < 0.1}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}


async def child(seed: int, count: int) -> None:
    import orjson

    from bench.decision_time import NullLog
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
    r = random.Random(seed)
    last = OUT / f"last-{seed}.json"
    errors = 0
    for i in range(count):
        body = orjson.dumps(review(r, i))
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
