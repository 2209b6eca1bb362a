"""The body budget: bytes being received by one process, counted as they arrive, always given back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from webhook.body_budget import BodyBudget
from webhook.config import load_settings
from webhook.errors import BadReview, ConfigError
from webhook.server import ClientGone, read_asgi_body

SCOPE: dict[str, Any] = {"type": "http", "headers": [(b"content-type", b"application/json")]}


def _receiving(*chunks: bytes, hang_up: bool = False) -> Callable[[], Awaitable[dict[str, Any]]]:
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or hang_up}
                for i, c in enumerate(chunks)]  # fmt: skip
    if hang_up:
        messages.append({"type": "http.disconnect"})

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    return receive


async def test_a_body_that_fits_is_read_and_its_bytes_given_back() -> None:
    budget = BodyBudget(100)
    assert await read_asgi_body(SCOPE, _receiving(b"a" * 60, b"b" * 40), 1000, budget) == b"a" * 60 + b"b" * 40
    assert budget.in_use == 0


async def test_a_body_beyond_the_budget_is_503_and_the_others_keep_their_share() -> None:
    budget = BodyBudget(100)
    assert budget.take(70)  # another request, still being received
    with pytest.raises(BadReview) as refused:
        await read_asgi_body(SCOPE, _receiving(b"a" * 20, b"b" * 20), 1000, budget)
    assert refused.value.status == 503 and "server.max_receiving_body_bytes" in refused.value.reason
    assert budget.in_use == 70


@pytest.mark.parametrize(("chunks", "hang_up", "error"), [
    ((b"a" * 50, b"b" * 60), False, BadReview),  # over admission.max_body_bytes (100): 413
    ((b"a" * 50,), True, ClientGone),
])  # fmt: skip
async def test_bytes_are_given_back_whatever_ends_the_read(
    chunks: tuple[bytes, ...], hang_up: bool, error: type[Exception]
) -> None:
    budget = BodyBudget(1000)
    with pytest.raises(error):
        await read_asgi_body(SCOPE, _receiving(*chunks, hang_up=hang_up), 100, budget)
    assert budget.in_use == 0


def test_zero_means_no_limit() -> None:
    budget = BodyBudget(0)
    assert budget.take(10**12) and budget.in_use == 10**12


@pytest.mark.parametrize(("text", "message"), [
    ("server:\n  max_receiving_body_bytes: 1000\n", "at least admission.max_body_bytes"),
    ("server:\n  request_read_timeout_seconds: -1\n", "request_read_timeout_seconds must be 0"),
    ("server:\n  max_connections: -1\n", "max_connections must be 0"),
    ("server:\n  tls_handshake_timeout_seconds: -1\n", "tls_handshake_timeout_seconds must be 0"),
])  # fmt: skip
def test_settings_that_cannot_work_are_refused(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)
