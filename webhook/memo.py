"""Decide a policy input once: a bounded memo of findings by (revision, input).

A rollout reaches admission many times with the same pod template (the Deployment,
its ReplicaSet, one Pod per replica). The policy input holds every fact the policy
sees, time facts included (bucketed by their gatherer), so the findings are a pure
function of (policy revision, input): a changed fact, revision or time bucket is a
different key and can never be served a stale answer. Policies must therefore not
call non-deterministic built-ins (``time.now_ns``, ``http.send``, ``rand``); facts
come from deployguard. Only successful evaluations are remembered.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import orjson

from webhook.decision import Finding


def memo_key(revision: str, policy_input: dict[str, Any]) -> bytes:
    payload = orjson.dumps(policy_input, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(revision.encode() + b"\0" + payload, digest_size=20).digest()


class DecisionMemo:
    """A thread-safe LRU of findings; ``max_entries=0`` turns it off."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[Finding, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> tuple[Finding, ...] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: bytes, findings: tuple[Finding, ...]) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            self._entries[key] = findings
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
