"""Start and stop real servers for the test tiers; always clean up, keep logs on failure.

Cleanup is layered because a leaked kube-apiserver or etcd outlives the test run and
holds ports and CPU: fixtures stop their processes; an ``atexit`` hook stops whatever
is left when Python exits normally (also after Ctrl-C); and on Linux each child gets
``PR_SET_PDEATHSIG`` so even a SIGKILLed test run takes its children with it.
Processes started with ``detached=True`` (the local control plane script) opt out.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _find_prctl() -> Callable[..., int] | None:
    # Looked up in the parent: the child between fork and exec should do as little as possible.
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _find_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the parent dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


_LIVE: set[Process] = set()  # attached processes not yet stopped


def stop_all() -> None:
    """Stop every attached process still running; registered with ``atexit``."""
    for process in list(_LIVE):
        with contextlib.suppress(Exception):
            process.stop(timeout=5.0)


atexit.register(stop_all)


class Process:
    """A child process with its output in a log file; killed with its process group.

    ``detached`` processes are meant to outlive this Python process (no atexit stop, no
    parent-death signal); everything else dies with the test run.
    """

    def __init__(
        self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None, *, detached: bool = False
    ) -> None:
        self.name, self.argv = name, argv
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=None if detached or _PRCTL is None else _die_with_parent,
        )
        self.pid = self.proc.pid
        if not detached:
            _LIVE.add(self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before {what}:\n{self.log_tail()}")
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not {what} within {timeout:.0f} s (log {self.log_path}):\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        _LIVE.discard(self)
        self._log.close()


def stop_process_group(pid: int, *, expect: str = "", timeout: float = 10.0) -> bool:
    """Stop a process group started earlier by another Python process (by its recorded pid).

    ``expect`` must occur in the process's command line, so that a pid the kernel has
    since given to an unrelated program is left alone. Returns whether it was running.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmdline = None
    if cmdline is not None and expect and expect not in cmdline:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie (our own child) counts as stopped.
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def http_ok(url: str, *, cafile: Path | None = None, timeout: float = 2.0) -> bool:
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def https_get(
    url: str, *, token: str = "", cafile: Path | None = None, insecure: bool = False, timeout: float = 2.0
) -> tuple[int, str]:
    """GET over HTTPS with an optional bearer token; (status, body), status 0 when unreachable.

    ``insecure`` is for components with self-signed serving certificates we do not
    need to trust (kube-controller-manager's health port).
    """
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, ""
