"""One root exception, with messages written for the person who has to act on them."""

from __future__ import annotations


class DeployguardError(Exception):
    """Root of every error deployguard raises on purpose."""


class BadReview(DeployguardError):
    """The webhook call itself is malformed: an HTTP 4xx, never a policy denial."""

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class PolicyLoadError(DeployguardError):
    """A policy revision could not be read or compiled; the previous one keeps serving."""


class EngineError(DeployguardError):
    """The policy engine failed to evaluate (error, undefined result, or timeout)."""


class ConfigError(DeployguardError):
    """The configuration is invalid."""
