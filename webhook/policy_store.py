"""Keep the engine serving the newest policy revision that compiles.

Polls the policy directory (Kubernetes ConfigMap volumes swap a symlink, which
inotify-style watchers miss): when any file's name, size, mtime or inode changed, it
reads and hashes the content and loads a changed revision. A
revision that fails to compile is reported with the compiler's message while the
previous one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from webhook.engines import PolicyEngine
from webhook.errors import PolicyLoadError
from webhook.policy_bundle import directory_stamp, load_bundle

log = logging.getLogger("deployguard.policy")


class PolicyStore:
    """Loads ``directory`` into ``engine`` now and whenever it changes."""

    def __init__(
        self, directory: Path, engine: PolicyEngine, *, interval: float = 2.0, retry_failed_after: float = 30.0
    ) -> None:
        self.directory = directory
        self.engine = engine
        self.interval = interval
        self.retry_failed_after = retry_failed_after  # e.g. OPA was not up yet
        self.last_error = ""
        self.rejected_revisions = 0
        self._failed: tuple[str, float] = ("", 0.0)
        self._serving_stamp: tuple[tuple[str, int, int, int], ...] | None = None

    async def reload(self) -> bool:
        """Load the directory if its content changed; True when a new revision now serves."""
        try:
            stamp = directory_stamp(self.directory)
        except OSError:
            stamp = None
        if stamp is not None and stamp == self._serving_stamp and self.engine.revision:
            return False  # no file changed since the serving revision was read
        try:
            bundle = load_bundle(self.directory)
        except (PolicyLoadError, OSError) as exc:
            return self._reject(str(exc), "")
        if bundle.revision == self.engine.revision:
            self._serving_stamp = stamp
            return False
        failed_revision, failed_at = self._failed
        if bundle.revision == failed_revision and time.monotonic() - failed_at < self.retry_failed_after:
            return False
        try:
            await self.engine.load(bundle)
        except PolicyLoadError as exc:
            self._failed = (bundle.revision, time.monotonic())
            return self._reject(str(exc), bundle.revision)
        self.last_error = ""
        self._serving_stamp = stamp
        log.info("policy revision %s now serving (engine %s, %s)", bundle.revision, self.engine.name, self.directory)
        return True

    def _reject(self, error: str, revision: str) -> bool:
        if error != self.last_error:
            self.rejected_revisions += 1
            serving = self.engine.revision or "none"
            log.error("policy revision %s rejected, still serving %s: %s", revision or "?", serving, error)
        self.last_error = error
        return False

    async def watch(self) -> None:
        """Reload forever; cancel the task to stop."""
        while True:
            await asyncio.sleep(self.interval)
            await self.reload()
