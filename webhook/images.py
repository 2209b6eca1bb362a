"""Container image references: parse, validate and normalise. Pure, no I/O.

Follows the grammar of the distribution project's ``reference`` package and the
Docker normalisation rules (``nginx`` is ``docker.io/library/nginx:latest``).
A reference that does not parse is a value with ``valid=False`` and a reason, not
an exception: the person who wrote it gets a finding they can act on.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
LEGACY_DEFAULT_REGISTRIES = frozenset({"index.docker.io", "registry-1.docker.io"})
NAME_MAX_LENGTH = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):([0-9a-fA-F]{32,})$")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class ImageReference:
    """A parsed reference; ``error`` is set (and ``valid`` false) when it does not parse."""

    original: str
    registry: str = ""
    repository: str = ""
    tag: str = ""
    digest: str = ""
    error: str = ""

    @property
    def valid(self) -> bool:
        return not self.error

    @property
    def pinned(self) -> bool:
        """Immutable: addressed by digest (a tag next to it is informational)."""
        return self.valid and bool(self.digest)

    @property
    def name(self) -> str:
        """Registry and repository, without tag or digest."""
        return f"{self.registry}/{self.repository}" if self.valid else ""

    @property
    def normalized(self) -> str:
        """The fully qualified reference, e.g. ``docker.io/library/nginx:latest``."""
        if not self.valid:
            return ""
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def pinned_as(self, digest: str) -> str:
        """The reference to write instead: this name pinned to ``digest``."""
        return f"{self.name}@{digest}"

    def as_policy_input(self) -> dict[str, object]:
        return {
            "valid": self.valid,
            "error": self.error,
            "registry": self.registry,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "pinned": self.pinned,
            "name": self.name,
            "normalized": self.normalized,
        }


def _invalid(original: str, reason: str) -> ImageReference:
    return ImageReference(original=original, error=reason)


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's rule: the first component is a registry if it looks like a host."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return DEFAULT_REGISTRY, name


def parse_image(reference: str) -> ImageReference:
    """Parse ``reference`` as written in a pod spec.

    Memoised: a rollout's requests name the same images again and again, and the
    result is an immutable value of the string alone."""
    if isinstance(reference, str) and len(reference) <= _CACHED_REFERENCE_CHARS:
        return _parse_image_cached(reference)
    return _parse_image(reference)


_CACHED_REFERENCE_CHARS = 1024


def _parse_image(reference: str) -> ImageReference:
    if not isinstance(reference, str) or not reference:
        return _invalid(str(reference), "the image reference is empty")
    if reference != reference.strip() or any(ch.isspace() for ch in reference):
        return _invalid(reference, "the image reference contains whitespace")
    rest, _, digest = reference.partition("@")
    if "@" in digest:
        return _invalid(reference, "the image reference has more than one '@'")
    tag = ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            return _invalid(reference, f"tag {tag!r} is not valid (letters, digits, '_', '.', '-'; at most 128)")
    if digest:
        match = _DIGEST.match(digest)
        if not match:
            return _invalid(reference, f"digest {digest!r} is not of the form <algorithm>:<hex>")
        algorithm, hex_part = match.groups()
        expected = _DIGEST_HEX_LENGTHS.get(algorithm)
        if expected is None:
            return _invalid(reference, f"digest algorithm {algorithm!r} is not supported (use sha256)")
        if len(hex_part) != expected or hex_part != hex_part.lower():
            return _invalid(reference, f"{algorithm} digest must be {expected} lower-case hex characters")
    if not rest:
        return _invalid(reference, "the image reference has no repository name")
    if len(rest) > NAME_MAX_LENGTH:
        return _invalid(reference, f"the repository name is longer than {NAME_MAX_LENGTH} characters")
    registry, path = _split_domain(rest)
    if not _DOMAIN.match(registry):
        return _invalid(reference, f"registry {registry!r} is not a valid host[:port]")
    if registry in LEGACY_DEFAULT_REGISTRIES:
        registry = DEFAULT_REGISTRY
    if path != path.lower():
        return _invalid(reference, f"repository {path!r} must be lower-case")
    components = path.split("/")
    for component in components:
        if not _PATH_COMPONENT.match(component):
            return _invalid(reference, f"repository path component {component!r} is not valid")
    if registry == DEFAULT_REGISTRY and len(components) == 1:
        path = f"library/{path}"
    if not tag and not digest:
        tag = "latest"
    return ImageReference(original=reference, registry=registry, repository=path, tag=tag, digest=digest)


_parse_image_cached = functools.lru_cache(maxsize=4096)(_parse_image)
