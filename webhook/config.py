"""Settings, one frozen dataclass per concern, built once at the edge and passed in.

A YAML file (``deployguard serve --config deployguard.yaml``) mirrors these
dataclasses section by section; every field has a safe default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from webhook.errors import ConfigError

EngineName = Literal["embedded", "opa"]


@dataclass(frozen=True)
class CustomKind:
    """A CRD whose pod template lives at ``template_path`` (dotted, e.g. ``spec.template``)."""

    group: str
    kind: str
    template_path: str


@dataclass(frozen=True)
class PolicySettings:
    """Where the policies come from and which engine evaluates them."""

    directory: Path | None = None  # None: the policies shipped with deployguard
    engine: EngineName = "embedded"
    opa_url: str = "http://127.0.0.1:8181"
    reload_interval_seconds: float = 2.0
    # Dangerous: an engine error or timeout admits the change instead of denying it.
    unsafe_fail_open: bool = False


@dataclass(frozen=True)
class AdmissionSettings:
    """How requests are parsed and answered."""

    deadline_seconds: float = 8.0  # keep below the webhook's timeoutSeconds (default 10)
    max_body_bytes: int = 3 * 1024 * 1024  # the API server's own object limit is ~3 MiB
    custom_kinds: tuple[CustomKind, ...] = ()
    # Identities (from the API server's userInfo, which a workload cannot forge) whose
    # creates of owned objects replay a template already admitted at the owner: a
    # ReplicaSet's Pods, a Deployment's ReplicaSets. Their change type is "replica".
    controller_users: tuple[str, ...] = (
        "system:kube-controller-manager",
        "system:serviceaccount:kube-system:replicaset-controller",
        "system:serviceaccount:kube-system:deployment-controller",
        "system:serviceaccount:kube-system:statefulset-controller",
        "system:serviceaccount:kube-system:daemon-set-controller",
        "system:serviceaccount:kube-system:job-controller",
        "system:serviceaccount:kube-system:cronjob-controller",
        "system:serviceaccount:kube-system:replication-controller",
        "system:serviceaccount:argo-rollouts:argo-rollouts",
    )
    decision_log_path: Path | None = None


@dataclass(frozen=True)
class ServerSettings:
    """The HTTPS listener. TLS is not optional."""

    host: str = "0.0.0.0"
    port: int = 8443
    certfile: Path = Path("certs/dev/tls.crt")
    keyfile: Path = Path("certs/dev/tls.key")
    cert_reload_interval_seconds: float = 5.0


@dataclass(frozen=True)
class Settings:
    """Everything, grouped by concern."""

    policy: PolicySettings = field(default_factory=PolicySettings)
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)
    server: ServerSettings = field(default_factory=ServerSettings)


def _section(cls: type[Any], raw: Any, name: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {name!r} must be a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"config section {name!r}: unknown key(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        default = getattr(cls(), key)
        if key == "controller_users":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"config {name}.controller_users must be a list of user names")
            values[key] = tuple(value)
        elif key == "custom_kinds":
            try:
                values[key] = tuple(CustomKind(**item) for item in value or ())
            except TypeError as exc:
                raise ConfigError(f"config {name}.custom_kinds: {exc}") from None
        elif isinstance(default, Path) or key in ("directory", "decision_log_path"):
            values[key] = Path(value) if value is not None else None
        else:
            values[key] = value
    return replace(cls(), **values)


def load_settings(path: Path | None) -> Settings:
    """Read a YAML settings file; ``None`` gives the defaults."""
    if path is None:
        return Settings()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping")
    unknown = sorted(set(raw) - {"policy", "admission", "server"})
    if unknown:
        raise ConfigError(f"config {path}: unknown section(s) {unknown}")
    settings = Settings(
        policy=_section(PolicySettings, raw.get("policy"), "policy"),
        admission=_section(AdmissionSettings, raw.get("admission"), "admission"),
        server=_section(ServerSettings, raw.get("server"), "server"),
    )
    if settings.policy.engine not in ("embedded", "opa"):
        raise ConfigError(f"policy.engine must be 'embedded' or 'opa', not {settings.policy.engine!r}")
    return settings
