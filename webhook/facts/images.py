"""The ``images`` fact gatherer: digests and signatures of every image in a request.

For each distinct image: the digest a tag-only reference resolves to now (so the
digest_pinning message can name the exact pinned reference), whether the tag of a
tag+digest reference still points at that digest, and for every image policy whose
globs match, each authority's verdict. Rego decides what the facts mean.

Fast path: verdicts are cached per (repository, digest, authorities) with a TTL,
failures in a short negative cache, concurrent requests for the same key share one
registry round trip (single flight), all images run concurrently, and the whole
gather is bounded by a budget below the request deadline: an image not done by then
is ``unknown``, never allowed by timeout.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from webhook.config import ImagePolicy, ImageSettings, SigningAuthority
from webhook.images import ImageReference, parse_image
from webhook.observe.io_counters import CacheCounter, signature_verification
from webhook.policy_input import Subject
from webhook.trust.pull_secrets import PullSecretCredentials, pull_secret_refs
from webhook.trust.registry import RegistryClient, RegistryError
from webhook.trust.signatures import AuthorityResult, SigstoreVerifier, verify_digest
from webhook.workloads import ChangeType

Clock = Callable[[], float]

_TAG_CACHE = CacheCounter("image_tag")
_VERDICT_CACHE = CacheCounter("image_verdict")


class TtlCache:
    """Values with an expiry, on an injectable monotonic clock (tests fake the clock)."""

    def __init__(self, clock: Clock = time.monotonic, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: Hashable, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (self._clock() + ttl, value)


class SingleFlight:
    """Concurrent callers with the same key share one call; a caller's cancellation
    (its request hit the deadline) does not cancel the call the others wait for."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Task[Any]] = {}
        self.calls = 0  # how many calls actually ran (for tests and the bench)

    async def do(self, key: Hashable, call: Callable[[], Awaitable[Any]]) -> Any:
        task = self._flights.get(key)
        if task is None:
            self.calls += 1

            async def run() -> Any:
                try:
                    return await call()
                finally:
                    self._flights.pop(key, None)

            task = asyncio.ensure_future(run())
            task.add_done_callback(_retrieve)
            self._flights[key] = task
        return await asyncio.shield(task)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a flight's failure as seen: once its callers are cancelled (their deadline came
    first), ``asyncio.shield`` stops watching it, and asyncio logged "Task exception was never
    retrieved" with a traceback for every registry failure that came later."""
    if not task.cancelled():
        task.exception()


def _clean(text: str) -> str:
    """Printable ASCII without quotes or backslashes: reasons are echoed in deny messages."""
    out = "".join(c if " " <= c <= "~" else "?" for c in text).replace('"', "'").replace("\\", "/")
    return out[:400]


def matching_policies(ref: ImageReference, policies: tuple[ImagePolicy, ...]) -> list[ImagePolicy]:
    """Policies with a glob matching the image's name or full normalised reference."""
    return [
        p
        for p in policies
        if any(fnmatch.fnmatchcase(ref.name, g) or fnmatch.fnmatchcase(ref.normalized, g) for g in p.images)
    ]


class ImageFacts:
    """FactGatherer ``images``; one per process, holding the caches and the registry client."""

    name = "images"

    def __init__(
        self,
        settings: ImageSettings,
        *,
        budget_seconds: float,
        client: RegistryClient | None = None,
        sigstore: SigstoreVerifier | None = None,
        clock: Clock = time.monotonic,
        pull_secrets: PullSecretCredentials | None = None,
    ) -> None:
        self.settings = settings
        self.pull_secrets = pull_secrets  # None: docker config credentials only
        self.budget_seconds = budget_seconds
        self.client = client or RegistryClient(settings.registry)
        self.sigstore = sigstore or SigstoreVerifier(settings.trusted_root)
        self._authorities = {a.name: a for a in settings.authorities}
        self.verdicts = TtlCache(clock)
        self.tags = TtlCache(clock)
        self.flights = SingleFlight()
        self._limit = asyncio.Semaphore(max(settings.max_concurrency, 1))

    async def gather(self, subject: Subject) -> dict[str, Any]:
        if subject.template is None or subject.change is ChangeType.DELETE:
            return {"status": "ok", "by_image": {}}
        images = sorted({c.image for c in subject.template.containers})
        client = self.client
        if self.pull_secrets is not None:
            refs = pull_secret_refs(subject.request.namespace, subject.template.spec)
            client = client.with_credentials(await self.pull_secrets.credentials(refs))
        return {"status": "ok", "by_image": await self.facts_for(images, client)}

    async def facts_for(self, images: list[str], client: RegistryClient | None = None) -> dict[str, Any]:
        """Facts per image string, every image concurrently, within the budget; ``client``
        carries the request's pull-secret credentials (default: the shared client)."""
        client = client or self.client
        tasks = {image: asyncio.ensure_future(self.image_fact(image, client)) for image in images}
        if not tasks:
            return {}
        done, pending = await asyncio.wait(tasks.values(), timeout=max(self.budget_seconds, 0.0))
        for task in pending:
            task.cancel()
        out: dict[str, Any] = {}
        for image, task in tasks.items():
            if task in done and not task.cancelled() and task.exception() is None:
                out[image] = task.result()
            else:
                error = f"not verified within the {self.budget_seconds:.2f} s deadline"
                if task in done and not task.cancelled() and task.exception() is not None:
                    error = _clean(str(task.exception()) or type(task.exception()).__name__)
                out[image] = self._unknown(parse_image(image), error)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return out

    def _unknown(self, ref: ImageReference, error: str) -> dict[str, Any]:
        fact = self._empty(ref)
        fact.update(status="unknown", error=error)
        return fact

    def _empty(self, ref: ImageReference) -> dict[str, Any]:
        policies = matching_policies(ref, self.settings.policies) if ref.valid else []
        return {
            "status": "ok",
            "error": "",
            "digest": ref.digest,
            "resolved_digest": "",
            "tag_digest": "",
            "tag_moved": False,
            "policies": [
                {
                    "name": p.name,
                    "mode": p.mode,
                    "threshold": p.threshold,
                    "authorities": list(p.authorities),
                    "verified": [],
                    "results": [],
                }
                for p in policies
            ],
        }

    async def image_fact(self, image: str, client: RegistryClient | None = None) -> dict[str, Any]:
        """Resolve, check the tag, verify: one image's facts (``status`` unknown on registry errors)."""
        client = client or self.client
        ref = parse_image(image)
        if not ref.valid:
            fact = self._empty(ref)
            fact.update(status="invalid", error=_clean(ref.error))
            return fact
        fact = self._empty(ref)
        try:
            if not ref.digest:
                fact["resolved_digest"] = fact["digest"] = await self.resolve_tag(ref, client)
            elif ref.tag:
                try:
                    fact["tag_digest"] = await self.resolve_tag(ref, client)
                    fact["tag_moved"] = fact["tag_digest"] != ref.digest
                except RegistryError as exc:
                    fact["tag_digest"] = ""
                    fact["tag_error"] = _clean(str(exc))
            for policy, entry in zip(matching_policies(ref, self.settings.policies), fact["policies"], strict=True):
                authorities = tuple(self._authorities[name] for name in policy.authorities)
                results = await self.verdict(ref, fact["digest"], authorities, client)
                entry["verified"] = [r.authority for r in results if r.verified]
                entry["results"] = [{**r.as_fact(), "reason": _clean(r.reason)} for r in results]
        except RegistryError as exc:
            return self._unknown(ref, _clean(str(exc)))
        return fact

    async def resolve_tag(self, ref: ImageReference, client: RegistryClient | None = None) -> str:
        """The digest the tag names now; cached and single-flighted per credentials used."""
        client = client or self.client
        key = ("tag", ref.name, ref.tag, client.identity(ref.registry))
        cached = self.tags.get(key)
        _TAG_CACHE(cached is not None)
        if cached is not None:
            return str(cached)

        async def call() -> str:
            async with self._limit:
                digest = await client.resolve(ref.registry, ref.repository, ref.tag)
            self.tags.put(key, digest, self.settings.tag_cache_ttl_seconds)
            return digest

        return str(await self.flights.do(key, call))

    async def verdict(
        self,
        ref: ImageReference,
        digest: str,
        authorities: tuple[SigningAuthority, ...],
        client: RegistryClient | None = None,
    ) -> list[AuthorityResult]:
        """Cached per (repository, digest, authorities, credentials); registry failures cached
        briefly. The credentials are in the key so that a request without a pull secret never
        gets a verdict that only another namespace's secret could produce."""
        client = client or self.client
        key = ("verdict", ref.name, digest, authorities, client.identity(ref.registry))
        cached = self.verdicts.get(key)
        _VERDICT_CACHE(cached is not None)  # a cached registry failure is a hit too
        if isinstance(cached, RegistryError):
            raise cached
        if cached is not None:
            return list(cached)

        async def call() -> list[AuthorityResult]:
            try:
                async with self._limit:
                    results = await verify_digest(
                        client, ref.registry, ref.repository, digest, authorities, self.sigstore
                    )
            except RegistryError as exc:
                self.verdicts.put(key, exc, self.settings.negative_cache_ttl_seconds)
                for _ in authorities:
                    signature_verification("error")
                raise
            self.verdicts.put(key, tuple(results), self.settings.cache_ttl_seconds)
            for result in results:
                signature_verification(result.outcome)
            return results

        return list(await self.flights.do(key, call))
