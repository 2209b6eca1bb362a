"""A local Kubernetes control plane with deployguard registered, for the e2e tier and for people.

etcd and kube-apiserver on free loopback ports, optionally kube-controller-manager (so
Deployments create ReplicaSets and keep rollout history, as in a real cluster), an admin
kubeconfig, and ``deployguard serve`` registered through the ValidatingWebhookConfiguration
that ``deployguard render webhook-config`` prints. No kubelet and no scheduler: admission
happens before scheduling, so Pods stay Pending and nothing is pulled.

Used by ``tests/e2e/conftest.py`` (session fixtures) and ``scripts/local_control_plane.py``
(``up`` / ``down`` for trying it by hand); nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.processes import Process, free_port, http_ok, https_get

WEBHOOK_NAME = "validate.deployguard.io"  # the webhook's name inside the configuration
CONFIGURATION_NAME = "deployguard"  # the ValidatingWebhookConfiguration's name
WEBHOOK_NAMESPACE = "deployguard-system"  # exempted by the namespaceSelector, like kube-system
PROBE_NAMESPACE = "deployguard-probe"  # where readiness probes dry-run a known-bad Deployment
DENIED_MARK = f'admission webhook "{WEBHOOK_NAME}" denied the request'
CALL_FAILED_MARK = f'failed calling webhook "{WEBHOOK_NAME}"'
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KCM_CONTROLLERS = (
    # The workload controllers (ReplicaSets, ControllerRevisions, Jobs from CronJobs), the
    # garbage collector (cascading deletes) and the namespace controller (namespace deletion).
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
)


class ToolMissing(RuntimeError):
    """A binary the control plane needs has not been provisioned."""


def tools_bin() -> Path:
    """Where scripts/provision_tools.py puts the binaries (same rule as tests.conftest.tools_bin)."""
    env = os.environ.get("DEPLOYGUARD_TOOLS_BIN")
    if env:
        return Path(env)
    return Path(os.environ.get("DEPLOYGUARD_TOOLS_CACHE", Path.home() / ".cache/deployguard/tools")) / "bin"


def deployguard_command() -> list[str]:
    """The deployguard CLI of the running interpreter's environment (the repo's .venv)."""
    script = Path(sys.executable).with_name("deployguard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "webhook"]


@dataclass(frozen=True)
class Tools:
    """Paths of the binaries; resolved once so a missing one fails before anything starts."""

    etcd: Path
    kube_apiserver: Path
    kubectl: Path
    kube_controller_manager: Path
    deployguard: tuple[str, ...]

    @classmethod
    def from_directory(cls, directory: Path | None = None) -> Tools:
        directory = directory or tools_bin()
        paths = {name: directory / name for name in ("etcd", "kube-apiserver", "kubectl", "kube-controller-manager")}
        missing = [name for name, path in paths.items() if not path.exists()]
        if missing:
            raise ToolMissing(
                f"{', '.join(missing)} not provisioned in {directory}; run: python3 scripts/provision_tools.py"
            )
        return cls(
            etcd=paths["etcd"],
            kube_apiserver=paths["kube-apiserver"],
            kubectl=paths["kubectl"],
            kube_controller_manager=paths["kube-controller-manager"],
            deployguard=tuple(deployguard_command()),
        )


def _wait(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    detail: Callable[[], str] = lambda: "",
    interval: float = 0.25,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:.0f} s\n{detail()}")
        time.sleep(interval)


# --------------------------------------------------------------------------- components


class Etcd:
    """A single-member etcd on loopback, data in a scratch directory, fsync off for speed."""

    def __init__(self, binary: Path, work_dir: Path, log_dir: Path) -> None:
        self.binary, self.data_dir, self.log_dir = binary, work_dir / "etcd", log_dir
        self.client_port, self.peer_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.process: Process | None = None

    def start(self, *, detached: bool = False) -> None:
        argv = [
            str(self.binary),
            "--name=deployguard-e2e",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls=http://127.0.0.1:{self.peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{self.peer_port}",
            f"--initial-cluster=deployguard-e2e=http://127.0.0.1:{self.peer_port}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        self.process = Process("etcd", argv, self.log_dir, detached=detached)

    def wait_ready(self, timeout: float = 30) -> None:
        assert self.process is not None
        self.process.wait_until(lambda: http_ok(f"{self.url}/health"), timeout, "healthy")


class KubeApiServer:
    """kube-apiserver with a static admin token (group system:masters) and RBAC."""

    def __init__(self, binary: Path, work_dir: Path, log_dir: Path, etcd_url: str) -> None:
        self.binary, self.dir, self.log_dir, self.etcd_url = binary, work_dir / "kube-apiserver", log_dir, etcd_url
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(24)
        # The controllers get their own name, so the decision log shows who made a ReplicaSet.
        self.controller_token = secrets.token_hex(24)
        self.cert_dir = self.dir / "pki"
        self.token_file = self.dir / "tokens.csv"
        self.service_account_key = self.dir / "service-account.key"
        self.process: Process | None = None

    @property
    def ca_file(self) -> Path:
        """The self-signed serving certificate (with its CA) that --cert-dir generated."""
        return self.cert_dir / "apiserver.crt"

    def _write_credentials(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.token_file.write_text(
            f'{self.token},admin,admin-uid,"system:masters"\n'
            f'{self.controller_token},system:kube-controller-manager,kcm-uid,"system:masters"\n'
        )
        self.token_file.chmod(0o600)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.service_account_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.service_account_key.chmod(0o600)

    def flags(self) -> list[str]:
        return [
            f"--etcd-servers={self.etcd_url}",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--cert-dir={self.cert_dir}",
            f"--token-auth-file={self.token_file}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={self.service_account_key}",
            f"--service-account-signing-key-file={self.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # No kubelet mounts tokens here, and the plugin would race the serviceaccount
            # controller in every fresh namespace ("serviceaccount default not found").
            "--disable-admission-plugins=ServiceAccount",
            # The "kubernetes" Service cannot point at a loopback address; nothing here needs it.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]

    def start(self, *, detached: bool = False) -> None:
        self._write_credentials()
        self.process = Process("kube-apiserver", [str(self.binary), *self.flags()], self.log_dir, detached=detached)

    def ready(self) -> bool:
        if not self.ca_file.exists():
            return False
        status, body = https_get(f"{self.url}/readyz", token=self.token, cafile=self.ca_file)
        return status == 200 and body.strip() == "ok"

    def wait_ready(self, timeout: float = 90) -> None:
        assert self.process is not None
        self.process.wait_until(self.ready, timeout, "ready (/readyz)")


class KubeControllerManager:
    """The controllers that turn Deployments into ReplicaSets and keep rollout history."""

    def __init__(self, binary: Path, log_dir: Path, kubeconfig: Path, service_account_key: Path) -> None:
        self.binary, self.log_dir, self.kubeconfig, self.service_account_key = (
            binary,
            log_dir,
            kubeconfig,
            service_account_key,
        )
        self.port = free_port()
        self.process: Process | None = None

    def start(self, *, detached: bool = False) -> None:
        argv = [
            str(self.binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--service-account-private-key-file={self.service_account_key}",
            "--use-service-account-credentials=false",
            f"--controllers={','.join(KCM_CONTROLLERS)}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            "--v=1",
        ]
        self.process = Process("kube-controller-manager", argv, self.log_dir, detached=detached)

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        self.process.wait_until(
            lambda: https_get(f"https://127.0.0.1:{self.port}/healthz", insecure=True)[0] == 200, timeout, "healthy"
        )


def write_kubeconfig(
    path: Path, *, server: str, token: str, ca_file: Path, name: str = "deployguard-local", user: str = "admin"
) -> Path:
    """A token kubeconfig that trusts the API server's self-signed certificate."""
    import base64

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_file.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------- kubectl


@dataclass(frozen=True)
class KubectlResult:
    """What a kubectl run printed; tests read the words, as a person would."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def denied_by_deployguard(self) -> bool:
        return self.returncode != 0 and DENIED_MARK in self.stderr

    def __str__(self) -> str:
        return f"$ kubectl {' '.join(self.args)}\n(exit {self.returncode})\n{self.stdout}{self.stderr}"


class Kubectl:
    """The provisioned kubectl, always with our kubeconfig, run as a subprocess."""

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary, self.kubeconfig = binary, kubeconfig

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 60) -> KubectlResult:
        completed = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return KubectlResult(tuple(args), completed.returncode, completed.stdout, completed.stderr)

    def apply(self, manifest: dict[str, Any] | str, *args: str) -> KubectlResult:
        """``kubectl apply -f -`` with the manifest (a dict is sent as YAML)."""
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest, sort_keys=False)
        return self("apply", "-f", "-", *args, stdin=text)

    def ensure_namespace(self, name: str) -> None:
        if self("get", "namespace", name).ok:
            return
        result = self("create", "namespace", name)
        if not result.ok and "AlreadyExists" not in result.stderr:
            raise RuntimeError(f"cannot create namespace {name}:\n{result}")

    def exists(self, kind: str, name: str, namespace: str) -> bool:
        result = self("get", kind, name, "-n", namespace, "-o", "name")
        if result.ok:
            return True
        if "NotFound" in result.stderr:
            return False
        raise RuntimeError(f"cannot tell whether {kind} {namespace}/{name} exists:\n{result}")


# --------------------------------------------------------------------------- deployguard


class DeployguardServer:
    """``deployguard serve`` on loopback with certificates from ``deployguard certs generate``."""

    def __init__(
        self,
        command: tuple[str, ...],
        work_dir: Path,
        log_dir: Path,
        *,
        name: str = "deployguard",
        cert_reload_interval_seconds: float = 0.5,
        kubeconfig: Path | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.command, self.name, self.log_dir = command, name, log_dir
        self.extra_config = extra_config or {}  # more settings sections, e.g. images
        self.dir = work_dir / name
        self.cert_dir = self.dir / "certs"
        self.config_file = self.dir / "deployguard.yaml"
        self.decision_log = self.dir / "decisions.jsonl"
        self.port = free_port()
        self.cert_reload_interval_seconds = cert_reload_interval_seconds
        self.kubeconfig = kubeconfig  # optional: lets deployguard talk to the API server (Events)
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/validate"

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / "ca.crt"

    def generate_certificates(self, *, new_ca: bool = False) -> None:
        """``deployguard certs generate`` for 127.0.0.1/localhost; ``new_ca`` replaces the CA too."""
        argv = [*self.command, "certs", "generate", "--out", str(self.cert_dir), "--ip", "127.0.0.1"]
        argv += ["--dns", "localhost", "--namespace", WEBHOOK_NAMESPACE] + (["--new-ca"] if new_ca else [])
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({completed.returncode}):\n{completed.stderr}")

    def start(self, *, detached: bool = False) -> None:
        if not (self.cert_dir / "tls.crt").exists():
            self.generate_certificates()
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {"server": {"cert_reload_interval_seconds": self.cert_reload_interval_seconds}}
        if self.kubeconfig is not None:
            config["kube_api"] = {"kubeconfig": str(self.kubeconfig)}
        config.update(self.extra_config)
        self.config_file.write_text(yaml.safe_dump(config))
        argv = [
            *self.command,
            "serve",
            "--config", str(self.config_file),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--cert", str(self.cert_dir / "tls.crt"),
            "--key", str(self.cert_dir / "tls.key"),
            "--decision-log", str(self.decision_log),
        ]  # fmt: skip
        self.process = Process(self.name, argv, self.log_dir, detached=detached)

    def ready(self) -> bool:
        return http_ok(f"https://127.0.0.1:{self.port}/readyz", cafile=self.ca_file)

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        self.process.wait_until(self.ready, timeout, "ready (/readyz)")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def decisions(self) -> list[dict[str, Any]]:
        """The decision log's records (one JSON object per line)."""
        if not self.decision_log.exists():
            return []
        return [json.loads(line) for line in self.decision_log.read_text().splitlines() if line.strip()]


def render_webhook_configuration(
    command: tuple[str, ...],
    *,
    url: str,
    ca_file: Path,
    failure_policy: str = "Fail",
    timeout_seconds: int = 10,
    namespace: str = WEBHOOK_NAMESPACE,
) -> str:
    """The YAML that ``deployguard render webhook-config`` prints for a loopback URL."""
    argv = [
        *command, "render", "webhook-config",
        "--url", url,
        "--ca-file", str(ca_file),
        "--namespace", namespace,
        "--failure-policy", failure_policy,
        "--timeout", str(timeout_seconds),
        "--name", CONFIGURATION_NAME,
    ]  # fmt: skip
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({completed.returncode}):\n{completed.stderr}")
    return completed.stdout


def probe_deployment(name: str = "probe") -> dict[str, Any]:
    """A Deployment every deployguard policy set must deny: its image is ``:latest``, not a digest."""
    labels = {"app": name, "app.kubernetes.io/version": "1.0.0"}
    container = {"name": name, "image": "nginx:latest"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": PROBE_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


# --------------------------------------------------------------------------- the whole thing


@dataclass
class LocalControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) + deployguard, registered.

    ``start`` brings everything up and returns only once the API server really sends
    workload changes to deployguard (a known-bad dry-run is denied); ``stop`` always
    stops everything it started, in reverse order, even after a failed start.
    """

    tools: Tools
    work_dir: Path
    log_dir: Path
    controller_manager: bool = True
    failure_policy: str = "Fail"
    detached: bool = False
    etcd: Etcd = field(init=False)
    apiserver: KubeApiServer = field(init=False)
    kcm: KubeControllerManager | None = field(init=False, default=None)
    deployguard: DeployguardServer = field(init=False)
    kubeconfig: Path = field(init=False)
    kubectl: Kubectl = field(init=False)

    def __post_init__(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.etcd = Etcd(self.tools.etcd, self.work_dir, self.log_dir)
        self.apiserver = KubeApiServer(self.tools.kube_apiserver, self.work_dir, self.log_dir, self.etcd.url)
        self.deployguard = DeployguardServer(self.tools.deployguard, self.work_dir, self.log_dir)
        self.kubeconfig = self.work_dir / "kubeconfig"
        self.kubectl = Kubectl(self.tools.kubectl, self.kubeconfig)

    @property
    def processes(self) -> list[Process]:
        parts: list[Any] = [self.etcd, self.apiserver, self.kcm, self.deployguard]
        return [p.process for p in parts if p is not None and p.process is not None]

    def start(self, timeout: float = 90) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        # Everything that does not depend on the API server starts at once; then we wait.
        self.etcd.start(detached=self.detached)
        self.deployguard.generate_certificates()
        self.deployguard.start(detached=self.detached)
        self.etcd.wait_ready()
        self.apiserver.start(detached=self.detached)
        self.apiserver.wait_ready(timeout)
        write_kubeconfig(self.kubeconfig, server=self.apiserver.url, token=self.apiserver.token,
                         ca_file=self.apiserver.ca_file)  # fmt: skip
        if self.controller_manager:
            kcm_kubeconfig = write_kubeconfig(
                self.work_dir / "kube-controller-manager.kubeconfig",
                server=self.apiserver.url,
                token=self.apiserver.controller_token,
                ca_file=self.apiserver.ca_file,
                user="system:kube-controller-manager",
            )
            self.kcm = KubeControllerManager(
                self.tools.kube_controller_manager, self.log_dir, kcm_kubeconfig, self.apiserver.service_account_key
            )
            self.kcm.start(detached=self.detached)
        for namespace in (WEBHOOK_NAMESPACE, PROBE_NAMESPACE):
            self.kubectl.ensure_namespace(namespace)
        self.deployguard.wait_ready()
        self.register(self.deployguard, failure_policy=self.failure_policy)
        self.wait_until_enforced(timeout)
        if self.kcm is not None:
            self.kcm.wait_ready()

    def stop(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                process.stop()

    # -- webhook registration

    def register(
        self,
        server: DeployguardServer,
        *,
        failure_policy: str = "Fail",
        url: str | None = None,
        ca_file: Path | None = None,
    ) -> str:
        """Apply the rendered ValidatingWebhookConfiguration pointing at ``server``; returns the YAML."""
        manifest = render_webhook_configuration(
            self.tools.deployguard,
            url=url or server.url,
            ca_file=ca_file or server.ca_file,
            failure_policy=failure_policy,
        )
        result = self.kubectl.apply(manifest)
        if not result.ok:
            raise RuntimeError(f"registering deployguard failed:\n{result}")
        return manifest

    def probe(self) -> KubectlResult:
        """A server-side dry-run of the known-bad Deployment; it leaves nothing behind."""
        return self.kubectl.apply(probe_deployment(), "--dry-run=server")

    def wait_for_probe(
        self, expect: Callable[[KubectlResult], bool], what: str, timeout: float = 60, interval: float = 0.25
    ) -> KubectlResult:
        """Poll until the API server's answer to the probe satisfies ``expect``.

        The API server picks up webhook configuration changes asynchronously (an
        informer), so after every registration change we wait for its effect.
        """
        last: list[KubectlResult] = []

        def check() -> bool:
            last[:] = [self.probe()]
            return expect(last[0])

        _wait(
            check,
            timeout,
            what,
            lambda: f"last probe:\n{last[0] if last else '(none)'}\n{self.log_tails()}",
            interval=interval,
        )
        return last[0]

    def switch_to(self, server: DeployguardServer, what: str, *, failure_policy: str = "Fail") -> None:
        """Register ``server`` instead and wait until the API server really calls it.

        Proof: the probe is denied and ``server`` (not another deployguard) logged it.
        """
        server.wait_ready()
        self.register(server, failure_policy=failure_policy)
        self.wait_for_probe(
            lambda r: r.denied_by_deployguard and any(rec.get("dry_run") for rec in server.decisions()),
            f"the {what} answering the API server",
        )

    def restore_session_registration(self) -> None:
        """Point the API server back at the session's deployguard, and wait until it enforces again."""
        self.register(self.deployguard, failure_policy=self.failure_policy)
        self.wait_until_enforced()

    @contextlib.contextmanager
    def serving(self, server: DeployguardServer, what: str) -> Iterator[DeployguardServer]:
        """Start ``server``, switch the API server to it, stop it afterwards (re-registering is the caller's)."""
        server.start()
        try:
            self.switch_to(server, what)
            yield server
        finally:
            server.stop()

    def wait_until_enforced(self, timeout: float = 60) -> KubectlResult:
        """Until deployguard denies the probe, i.e. the current registration is in effect."""

        def hint() -> str:
            return (
                "deployguard never denied a Deployment with image nginx:latest. If the API server answered "
                "without calling deployguard, the registration is not effective; if deployguard allowed it, "
                "check the policies with: deployguard check -f examples/deployment-latest.yaml"
            )

        try:
            return self.wait_for_probe(lambda r: r.denied_by_deployguard, "deployguard denying the probe", timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{hint()}") from None

    # -- diagnostics

    def log_tails(self, lines: int = 30, width: int = 400) -> str:
        """The last lines of every log, each cut to ``width`` (decision log lines are long)."""
        parts = []
        for process in self.processes:
            tail = "\n".join(line[:width] for line in process.log_tail(lines).splitlines())
            parts.append(f"----- {process.name} ({process.log_path}) -----\n{tail}")
        return "\n".join(parts)

    def state(self) -> dict[str, Any]:
        """What ``scripts/local_control_plane.py down`` needs to stop everything later."""
        return {
            "kubeconfig": str(self.kubeconfig),
            "kubectl": str(self.tools.kubectl),
            "apiserver": self.apiserver.url,
            "webhook": self.deployguard.url,
            "webhook_ca": str(self.deployguard.ca_file),
            "decision_log": str(self.deployguard.decision_log),
            "log_dir": str(self.log_dir),
            "processes": [
                {"name": p.name, "pid": p.pid, "argv0": p.argv[0], "log": str(p.log_path)} for p in self.processes
            ],
        }
