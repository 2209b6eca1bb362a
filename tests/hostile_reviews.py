"""Random hostile AdmissionReviews, seeded so that any one can be made again.

Long, escaped, non-ASCII and format-like strings in every field a submitter controls,
broken image references, bad break-glass tokens, odd replica counts. Used by
``scripts/fuzz_crash.py`` (crashes and engine errors) and by the engine differential
test (embedded and OPA must decide each alike).
"""

from __future__ import annotations

import random
from typing import Any

NASTY = ['"', "\\", '\\"', '"}], "deny": [], "x": [{"a": "', "\u0000", "\u001f", "\n\r\t\b\f", "\u007f", "\u2028",
         "é", "日本", "😀", "\ud7ff", " ", "", "/", "\\u0041", "%20", "+", "\u202e", "\u200f", "\ufeff", "e\u0301",
         "ｎｇｉｎｘ", "\U0010ffff", "%s%d%v%q", "{", "}", "[", "]", ":", "@", "sha256:", "..", "*", "$", "(", ")",
         "^", "|", "?", "#", "\u00a0", "\u3000", "\u0085", "\u2009"]  # fmt: skip
KINDS = ["Deployment", "Pod", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"]


class HostileReviews:
    """``review(i)`` is the next random review; ``longest`` bounds the repeated-character strings
    (6,000 reaches admission.max_string_bytes once escaped; a few hundred keeps every review
    below it, so that all of them are evaluated)."""

    def __init__(self, seed: int, *, longest: int = 6000) -> None:
        self._r = random.Random(seed)
        self._longest = longest

    def review(self, i: int) -> dict[str, Any]:
        r = self._r
        kind = r.choice(KINDS)
        op = r.choice(["CREATE", "UPDATE"])
        new = self._object(kind)
        group = "" if kind == "Pod" else ("batch" if kind in ("Job", "CronJob") else "apps")
        request = {
            "uid": f"fuzz-{i}", "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": kind.lower() + "s"},
            "namespace": new["metadata"]["namespace"], "name": new["metadata"]["name"], "operation": op,
            "userInfo": {"username": self._string(), "groups": [self._string()]}, "object": new,
            "oldObject": self._object(kind) if op == "UPDATE" else None, "dryRun": r.random() < 0.1,
        }  # fmt: skip
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}

    def _string(self) -> str:
        r = self._r
        kind = r.random()
        if kind < 0.3:
            return "".join(r.choice(NASTY) for _ in range(r.randint(0, 6)))
        if kind < 0.5:
            text = "".join(chr(r.randint(1, 0x10FFFF)) for _ in range(r.randint(0, 40)))
            return text.encode("utf-8", "ignore").decode("utf-8", "ignore")
        if kind < 0.65:
            return r.choice([*NASTY, "a", "A", "0", "-", "."]) * r.randint(1, self._longest)
        if kind < 0.8:
            return "".join(chr(r.randint(32, 126)) for _ in range(r.randint(0, 300)))
        return r.choice(["web", "nginx", "shop", "app.kubernetes.io/version", "deployguard.io/release-id", "1.2.3",
                         "latest", "true"])

    def _image(self) -> str:
        r = self._r
        parts = [r.choice(["", "docker.io/", "ghcr.io/", "localhost:5000/", "127.0.0.1/", "[::1]:5000/", "a.b.c/",
                           self._string() + "/"])]  # fmt: skip
        parts.append(r.choice(["nginx", "library/nginx", "a/" * r.randint(1, 300), self._string()]))
        if r.random() < 0.6:
            parts.append(":" + r.choice(["latest", "1.2.3", "v1", self._string(), "1" * r.randint(1, 200)]))
        if r.random() < 0.5:
            parts.append("@" + r.choice(["sha256:" + "a" * 64, "sha256:" + self._string(), "sha512:" + "b" * 128,
                                         self._string()]))  # fmt: skip
        return "".join(parts)

    def _map(self) -> dict[str, str]:
        return {self._string(): self._string() for _ in range(self._r.randint(0, 4))}

    def _template(self) -> dict[str, Any]:
        r = self._r
        spec: dict[str, Any] = {
            "containers": [{"name": self._string(), "image": self._image()} for _ in range(r.randint(0, 3))]
        }
        if r.random() < 0.3:
            spec["initContainers"] = [{"name": self._string(), "image": self._image()}]
        if r.random() < 0.1:
            spec["ephemeralContainers"] = [{"name": self._string(), "image": self._image()}]
        return {"metadata": {"labels": self._map(), "annotations": self._map()}, "spec": spec}

    def _object(self, kind: str) -> dict[str, Any]:
        r = self._r
        template = self._template()
        meta = {"name": self._string(), "namespace": self._string(), "labels": self._map(),
                "annotations": self._map()}  # fmt: skip
        if r.random() < 0.2:
            meta["annotations"]["deployguard.io/break-glass"] = self._string()
        if kind == "Pod":
            return {"apiVersion": "v1", "kind": "Pod", "metadata": {**meta, **template["metadata"]},
                    "spec": template["spec"]}  # fmt: skip
        if kind == "CronJob":
            return {"apiVersion": "batch/v1", "kind": kind, "metadata": meta,
                    "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}  # fmt: skip
        api_version = "batch/v1" if kind == "Job" else "apps/v1"
        return {"apiVersion": api_version, "kind": kind, "metadata": meta,
                "spec": {"replicas": r.choice([0, 1, 3, 10**6, -1]), "template": template}}  # fmt: skip
