"""The Kubernetes API goes down while deployguard watches ChangeFreeze objects.

A control plane of its own (etcd + kube-apiserver, no webhook registration: the load
goes straight to deployguard) so that killing its API server does not disturb the
session's. Under load: the freeze denies; the API server is SIGKILLed and the last
known freeze stays in force while the answers start saying the calendar is stale;
the API server comes back on the same port, the watch reconnects by itself and sees
the freeze being lifted. Every request is answered, one decision log line each.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, tool
from tests.controlplane import DeployguardServer, Etcd, KubeApiServer, Kubectl, write_kubeconfig
from tests.faults import (
    Load,
    assert_all_answered,
    assert_log_matches,
    base_url,
    readyz,
    review_body,
    running,
    served,
    under_load,
    until,
)
from tests.processes import Process

pytestmark = pytest.mark.e2e

CRDS = REPO / "charts" / "deployguard" / "crds"
FREEZE = "incident-7"
STALE = "change calendar is stale"


@dataclass
class ApiServerOnly:
    etcd: Etcd
    apiserver: KubeApiServer
    kubeconfig: Path
    kubectl: Kubectl
    log_dir: Path

    def restart_apiserver(self) -> None:
        """The same flags, port and credentials (the kubeconfig's token stays valid)."""
        argv = [str(self.apiserver.binary), *self.apiserver.flags()]
        self.apiserver.process = Process("kube-apiserver-restarted", argv, self.log_dir)
        self.apiserver.wait_ready()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerOnly]:
    base = tmp_path_factory.mktemp("faults-kube")
    work, logs = base / "work", base / "logs"
    etcd = Etcd(tool("etcd"), work, logs)
    apiserver = KubeApiServer(tool("kube-apiserver"), work, logs, etcd.url)
    try:
        etcd.start()
        etcd.wait_ready()
        apiserver.start()
        apiserver.wait_ready()
        kubeconfig = write_kubeconfig(work / "kubeconfig", server=apiserver.url, token=apiserver.token,
                                      ca_file=apiserver.ca_file)  # fmt: skip
        kubectl = Kubectl(tool("kubectl"), kubeconfig)
        for argv in (("apply", "-f", str(CRDS)),
                     ("wait", "--for", "condition=established", "--timeout=60s", "-f", str(CRDS))):  # fmt: skip
            result = kubectl(*argv)
            assert result.ok, result
        kubectl.ensure_namespace("shop")
        yield ApiServerOnly(etcd, apiserver, kubeconfig, kubectl, logs)
    finally:
        for component in (apiserver, etcd):
            if component.process is not None:
                component.process.stop()


def freeze() -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "apiVersion": "deployguard.io/v1alpha1",
        "kind": "ChangeFreeze",
        "metadata": {"name": FREEZE, "namespace": "shop"},
        "spec": {
            "reason": "checkout outage",
            "declaredBy": "sre-oncall",
            "start": (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "end": (now + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
        },
    }


def text(answer: Any) -> str:
    return " ".join((answer.message, *answer.warnings))


async def test_api_down_keeps_the_last_known_freeze_reports_staleness_and_reconnects(
    api: ApiServerOnly, tmp_path: Path
) -> None:
    applied = api.kubectl.apply(freeze())
    assert applied.ok, applied
    server: DeployguardServer = served(tmp_path, tmp_path / "logs", {
        "kube_api": {"kubeconfig": str(api.kubeconfig), "timeout_seconds": 1},
        "windows": {"watch_kubernetes": True, "resync_seconds": 30, "stale_after_seconds": 2},
        "admission": {"deadline_seconds": 3},
    })  # fmt: skip
    marker = f"ChangeFreeze shop/{FREEZE}"
    with running(server):
        base, load = base_url(server), Load(phase="listing")
        async with under_load(load, server, seconds=180, concurrency=4, make_body=review_body):
            await until(lambda: any(marker in a.message for a in load.of("listing")), 60,
                        "the watch to list the freeze")  # fmt: skip
            load.enter("frozen")
            await asyncio.sleep(1.0)

            assert api.apiserver.process is not None
            await asyncio.to_thread(api.apiserver.process.stop, signal.SIGKILL)
            load.enter("api down")
            await until(lambda: any(STALE in text(a) for a in load.of("api down")), 30, "answers to report staleness")
            load.enter("stale")
            await asyncio.sleep(1.0)
            stale_ready = await readyz(base, server.ca_file)

            load.enter("restarting")
            await asyncio.to_thread(api.restart_apiserver)
            deleted = await asyncio.to_thread(api.kubectl, "delete", "changefreeze", FREEZE, "-n", "shop")
            assert deleted.ok, deleted
            await until(lambda: any(a.allowed and STALE not in text(a) for a in load.of("restarting")), 60,
                        "the watch to reconnect, see the freeze lifted and stop reporting staleness")  # fmt: skip
            load.enter("recovered")
            await asyncio.sleep(1.0)
    assert server.process is not None
    server_log = server.process.log_path.read_text(errors="replace")

    for phase in ("listing", "frozen", "api down", "stale", "restarting", "recovered"):
        print(load.summary(phase), "| allowed:", sum(bool(a.allowed) for a in load.of(phase)))
    assert_all_answered(load)
    # /readyz waits for the first list: from the first answer on, the freeze is enforced.
    listing = load.of("listing")
    assert listing and all(not a.allowed for a in listing), [a.name for a in listing if a.allowed][:3]
    frozen = load.of("frozen")
    assert frozen and all(not a.allowed and marker in a.message for a in frozen), frozen[0].message
    # API down: the last known freeze stays in force (never an allow because the source went away) ...
    down = load.settled("api down") + load.settled("stale")
    assert down and all(not a.allowed and marker in a.message for a in down), [text(a) for a in down if a.allowed][:2]
    # ... and, once stale_after_seconds have passed, every answer says the calendar is stale.
    stale = load.settled("stale")
    assert stale and all(STALE in text(a) for a in stale), text(stale[0])
    # The calendar is a fact source: deployguard stays ready (it still answers, with the last known freezes).
    assert stale_ready[0] == 200, stale_ready
    recovered = load.of("recovered")
    assert recovered and all(a.allowed and STALE not in text(a) for a in recovered), text(recovered[0])
    assert_log_matches(load, server)
    # While the API server was down the watch said so once per change, not once per urllib3 retry.
    assert "Retrying (Retry(" not in server_log, [line for line in server_log.splitlines() if "Retrying" in line][:2]
    assert server_log.count("cannot list/watch changefreezes") <= 5, server_log[-3000:]
