"""The windows gatherer's watch follows the server's lifespan; one-shot commands list once instead."""

from __future__ import annotations

from pathlib import Path

from webhook.config import KubeApiSettings, Settings, WindowsSettings
from webhook.facts.windows import WindowsGatherer, build_windows_gatherer
from webhook.governance.calendar_sources import Snapshot
from webhook.governance.kube_calendar import KubeCalendarSource


class RecordingSource:
    """A calendar source that records what was asked of it."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def snapshot(self) -> Snapshot:
        return Snapshot()

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def list_once(self) -> Snapshot:
        self.calls.append("list_once")
        return Snapshot()


def test_start_stop_and_prime_reach_the_watching_sources() -> None:
    source = RecordingSource()
    gatherer = WindowsGatherer([source])

    gatherer.start()
    gatherer.stop()
    gatherer.prime()

    assert source.calls == ["start", "stop", "list_once"]


def test_building_the_gatherer_does_not_start_the_watch(tmp_path: Path) -> None:
    settings = Settings(
        windows=WindowsSettings(watch_kubernetes=True), kube_api=KubeApiSettings(kubeconfig=tmp_path / "absent")
    )
    gatherer = build_windows_gatherer(settings)
    [kube] = [s for s in gatherer._sources if isinstance(s, KubeCalendarSource)]
    assert kube._threads == []  # started by the server's lifespan (webhook/serve.py), not at build time


def test_listing_once_without_a_cluster_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    source = KubeCalendarSource(tmp_path / "no-kubeconfig")
    snapshot = source.list_once()
    assert any("cannot reach Kubernetes" in p.message for p in snapshot.problems), snapshot.problems
