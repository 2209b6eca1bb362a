"""--workers: the parts that need no child processes (the integration tier runs two)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from webhook.config import ServerSettings, Settings, load_settings
from webhook.errors import ConfigError
from webhook.workers import reuseport_socket, serve_workers


def test_two_reuseport_sockets_share_a_port() -> None:
    first = reuseport_socket("127.0.0.1", 0)
    try:
        second = reuseport_socket("127.0.0.1", first.getsockname()[1])
        second.close()
    finally:
        first.close()


def test_a_port_held_without_reuseport_is_refused_with_the_reason() -> None:
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1:"):
            serve_workers(Settings(server=ServerSettings(host="127.0.0.1", port=plain.getsockname()[1])), 2)


def test_zero_workers_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        serve_workers(Settings(), 0)


def test_workers_come_from_the_server_section(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  workers: 3\n")
    assert load_settings(config).server.workers == 3


def test_connection_rotation_settings(tmp_path: Path) -> None:
    """By age by default (a request count churns fastest under the heaviest load); both bounded below."""
    defaults = Settings().server
    assert (defaults.max_connection_age_seconds, defaults.max_requests_per_connection) == (60.0, 0)
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  max_connection_age_seconds: 300\n  max_requests_per_connection: 5000\n")
    server = load_settings(config).server
    assert (server.max_connection_age_seconds, server.max_requests_per_connection) == (300, 5000)
    for bad in ("max_connection_age_seconds: -1", "max_connection_age_seconds: .nan",
                "max_requests_per_connection: -1"):  # fmt: skip
        config.write_text(f"server:\n  {bad}\n")
        with pytest.raises(ConfigError, match="0 \\(no limit\\) or more"):
            load_settings(config)
