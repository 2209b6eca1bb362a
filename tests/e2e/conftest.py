"""Session fixtures for the e2e tier: one real control plane with deployguard registered.

The control plane (etcd, kube-apiserver, kube-controller-manager, deployguard serve)
starts once per session, which is most of the tier's cost. Its processes are stopped
by the fixture's teardown, also after Ctrl-C (pytest runs finalizers on
KeyboardInterrupt) and SIGTERM (turned into KeyboardInterrupt here); a SIGKILLed run
takes them along through the parent-death signal set in tests/processes.py.
Logs live in the pytest tmp dir; a failing e2e test gets their tails in its report.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import uuid
from collections.abc import Generator, Iterator
from types import FrameType

import pytest

from tests.conftest import tool
from tests.controlplane import DeployguardServer, Kubectl, LocalControlPlane, Tools, deployguard_command
from tests.oci import registry as registry  # a module's own loopback registry
from tests.oci import release_key as release_key  # a module's own cosign key pair

_PLANES: list[LocalControlPlane] = []


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Let SIGTERM unwind like Ctrl-C, so fixture teardown stops the processes."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager + deployguard (failurePolicy Fail), ready."""
    tools = Tools(
        etcd=tool("etcd"),
        kube_apiserver=tool("kube-apiserver"),
        kubectl=tool("kubectl"),
        kube_controller_manager=tool("kube-controller-manager"),
        deployguard=tuple(deployguard_command()),
    )
    base = tmp_path_factory.mktemp("control-plane")
    plane = LocalControlPlane(tools, work_dir=base / "work", log_dir=base / "logs", failure_policy="Fail")
    _PLANES.append(plane)
    with _sigterm_interrupts():
        failure = ""
        try:
            plane.start()
        except RuntimeError as exc:
            failure = str(exc)
        if failure:
            pytest.fail(f"the local control plane did not start (logs in {plane.log_dir}):\n{failure}", pytrace=False)
        try:
            yield plane
        finally:
            plane.stop()
            _PLANES.remove(plane)
            # etcd preallocates its WAL; the logs are what is worth keeping.
            shutil.rmtree(plane.etcd.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kubectl(control_plane: LocalControlPlane) -> Kubectl:
    return control_plane.kubectl


@pytest.fixture(scope="session")
def deployguard(control_plane: LocalControlPlane) -> DeployguardServer:
    return control_plane.deployguard


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> str:
    """A fresh namespace per test, so tests never see each other's objects."""
    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"e2e-{slug}-{uuid.uuid4().hex[:5]}"
    kubectl.ensure_namespace(name)
    return name


@pytest.fixture
def restore_registration(control_plane: LocalControlPlane) -> Iterator[None]:
    """For tests that re-register the webhook: put the session's registration back, whatever happened."""
    yield
    control_plane.restore_session_registration()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tails of the control plane's logs to a failing e2e test's report."""
    report = yield
    if report.failed and _PLANES:
        for plane in _PLANES:
            report.sections.append((f"control plane logs ({plane.log_dir})", plane.log_tails(lines=25)))
    return report
