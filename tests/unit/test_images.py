from __future__ import annotations

import pytest

from webhook.images import parse_image

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("reference", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", ""),
        ("nginx:1.27", "docker.io", "library/nginx", "1.27", ""),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", ""),
        ("docker.io/library/nginx:1", "docker.io", "library/nginx", "1", ""),
        ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", ""),
        ("localhost/app", "localhost", "app", "latest", ""),
        ("localhost:5000/team/app:v1", "localhost:5000", "team/app", "v1", ""),
        ("127.0.0.1:5000/app@" + DIGEST, "127.0.0.1:5000", "app", "", DIGEST),
        ("ghcr.io/org/sub/path/app:v1@" + DIGEST, "ghcr.io", "org/sub/path/app", "v1", DIGEST),
        ("Registry.Example.com/app:v1", "Registry.Example.com", "app", "v1", ""),
        ("[::1]:5000/app:v1", "[::1]:5000", "app", "v1", ""),
        ("registry.example.com/a__b/c-d/e.f:1.0_rc-1", "registry.example.com", "a__b/c-d/e.f", "1.0_rc-1", ""),
    ],
)
def test_parses_and_normalises(reference: str, registry: str, repository: str, tag: str, digest: str) -> None:
    ref = parse_image(reference)
    assert ref.valid, ref.error
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.pinned == bool(digest)


def test_normalized_and_pinned_as() -> None:
    ref = parse_image("nginx:latest")
    assert ref.normalized == "docker.io/library/nginx:latest"
    assert ref.pinned_as(DIGEST) == f"docker.io/library/nginx@{DIGEST}"
    assert parse_image(f"nginx:1@{DIGEST}").normalized == f"docker.io/library/nginx:1@{DIGEST}"


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("", "empty"),
        ("nginx latest", "whitespace"),
        ("Nginx:1", "lower-case"),
        ("docker.io/Library/nginx", "lower-case"),
        ("nginx:", "tag"),
        ("nginx:-bad", "tag"),
        ("nginx:" + "a" * 129, "tag"),
        ("nginx@sha256:abc", "digest"),
        ("nginx@sha256:" + "A" * 64, "lower-case hex"),
        ("nginx@md5:" + "a" * 32, "not supported"),
        ("nginx@sha256:" + "a" * 63, "64"),
        ("nginx@" + DIGEST + "@" + DIGEST, "more than one"),
        ("registry.example.com/" + "a" * 300, "longer than"),
        ("-bad.example.com/app", "registry"),
        ("app//x", "path component"),
        (":1", "no repository"),
    ],
)
def test_invalid_references_are_values_with_reasons(reference: str, reason: str) -> None:
    ref = parse_image(reference)
    assert not ref.valid
    assert reason in ref.error
    assert not ref.pinned and ref.normalized == ""
    assert ref.as_policy_input()["valid"] is False
