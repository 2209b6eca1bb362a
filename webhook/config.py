"""Settings, one frozen dataclass per concern, built once at the edge and passed in.

A YAML file (``deployguard serve --config deployguard.yaml``) mirrors these
dataclasses section by section; every field has a safe default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from webhook import yaml_limits
from webhook.errors import ConfigError
from webhook.trust.identity_patterns import compile_pattern

EngineName = Literal["embedded", "opa", "wasm"]


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
    # The opa binary that compiles the policies to Wasm for engine "wasm" (at each load).
    opa_binary: str = "opa"
    reload_interval_seconds: float = 2.0
    # Dangerous: an engine error or timeout admits the change instead of denying it.
    unsafe_fail_open: bool = False


# admission.max_string_bytes at most: rego-cpp 1.5.2 crashes matching regexes on strings of
# about 26,000 bytes in their escaped JSON form (webhook/input_limits.py: string_over_limit).
MAX_STRING_BYTES_CEILING = 16_384


@dataclass(frozen=True)
class AdmissionSettings:
    """How requests are parsed and answered."""

    deadline_seconds: float = 8.0  # keep below the webhook's timeoutSeconds (default 10)
    max_body_bytes: int = 3 * 1024 * 1024  # the API server's own object limit is ~3 MiB
    max_json_depth: int = 128  # deeper nesting of objects/arrays in the body gets HTTP 400 (orjson stops at 1024)
    max_containers: int = 50  # more containers in one pod template are denied unevaluated (evaluation cost grows ~n²)
    max_image_reference_chars: int = 1024  # longer image strings are denied unevaluated (a valid one is ~400 at most)
    # any longer string in the policy input (a name, label, annotation, container name, as escaped
    # JSON) is denied unevaluated: rego-cpp crashes matching regexes at ~26,000 bytes; at most 16,384
    max_string_bytes: int = 8192
    # more labels or annotations on the object or its pod template (each map), or more groups of
    # the requester, are denied unevaluated: each entry costs ~15 µs of blocked event loop; 0: no limit
    max_map_entries: int = 512
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
    # PEM CA(s) for client certificates: when set, callers must present a certificate it
    # signed (the API server's, configured in its AdmissionConfiguration kubeconfig); None: no client auth.
    client_ca_file: Path | None = None
    workers: int = 1  # processes sharing the port (SO_REUSEPORT); one core each
    # Age after which a keep-alive connection's next answer carries "connection: close": the
    # client reconnects and kube-proxy places the new connection on any replica, so a replica
    # added under steady load gets its share within a minute. By age, not by request count:
    # a count makes connections churn fastest under the heaviest load, where each reconnect
    # costs most. (Across the workers of one pod, connections are kept even regardless:
    # webhook/connection_share.py.) 0: no limit.
    max_connection_age_seconds: float = 60.0
    # Answers per keep-alive connection, the same way (nginx's keepalive_requests). 0: no limit.
    max_requests_per_connection: int = 0
    # A request must arrive whole within this many seconds of its first byte (or of the
    # connection's opening); slower ones are cut (slowloris). The API server sends at once. 0: no limit.
    request_read_timeout_seconds: float = 10.0
    # A TLS handshake must end this soon after the connection is accepted (asyncio's default is
    # 60 s, and until then a connection holds a place under max_connections). The API server
    # finishes in milliseconds. 0: asyncio's 60 s.
    tls_handshake_timeout_seconds: float = 5.0
    # Request-body bytes one process holds while receiving them, all connections together;
    # beyond, a request gets 503. At least admission.max_body_bytes. 0: no limit.
    max_receiving_body_bytes: int = 32 * 1024 * 1024
    # Open TLS connections per process, counted from accept (each holds ~50 KB before its
    # handshake); more are closed at once, without a handshake (webhook/connection_gate.py).
    # The API server uses tens to hundreds. 0: no limit.
    max_connections: int = 1000
    # Once the process is quiet, RSS has grown this many MiB since the last look and glibc's
    # heap holds as much free, the free pages go back to the OS (webhook/memory_release.py):
    # without it a burst of big reviews or connections leaves the process at its peak
    # (133 -> 220 MB, kept). 0: never.
    memory_release_threshold_mib: int = 16
    # A plain-HTTP port answering GET /healthz and /readyz only (webhook/probes.py), for the
    # kubelet's probes when client_ca_file makes the TLS port demand a client certificate.
    # 0: none.
    probe_port: int = 0
    # Also GET /metrics on the probe port, for a Prometheus that has no client certificate
    # under mTLS (what it tells: decision counts by kind and rule, latencies, registries contacted,
    # the policy revision; no namespace or workload names).
    probe_port_metrics: bool = False
    # Open connections on the probe port per process; more are closed at accept (the kubelet
    # and a Prometheus need a few; without a ceiling, whoever reaches the port holds as many
    # as it opens). 0: no limit.
    probe_max_connections: int = 64
    # "auto": uvloop when installed (uvicorn[standard] brings it; ~2x the asyncio loop's rate), else asyncio;
    # "asyncio" or "uvloop" to choose.
    event_loop: str = "auto"


@dataclass(frozen=True)
class RegistrySettings:
    """How deployguard talks to OCI registries. Image references come from whoever submits
    the workload, so the client must not become a way into the cluster network."""

    # Registries (host[:port]) that may be contacted at all; empty: any public registry.
    allowed_registries: tuple[str, ...] = ()
    # Registries (host[:port]) that may resolve to loopback / private / link-local addresses.
    private_registries: tuple[str, ...] = ()
    # Dangerous: any registry may resolve to any address (loopback, cluster network...).
    unsafe_allow_private_addresses: bool = False
    # Registries (host[:port]) spoken to over plain HTTP instead of HTTPS.
    plain_http_registries: tuple[str, ...] = ()
    ca_bundle: Path | None = None  # extra CAs (PEM) on top of the system store
    docker_config: Path | None = None  # a docker config.json with registry credentials
    timeout_seconds: float = 3.0  # per call
    retries: int = 1  # extra attempts on connection errors, 429 and 5xx
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_blob_bytes: int = 1024 * 1024  # signature payloads and bundles are small


@dataclass(frozen=True)
class SigningAuthority:
    """Who may sign: a cosign public key (PEM file) or a keyless identity (certificate
    SAN and OIDC issuer, each exact or a regular expression)."""

    name: str
    key: Path | None = None
    identity: str = ""
    identity_regex: str = ""
    issuer: str = ""
    issuer_regex: str = ""


@dataclass(frozen=True)
class ImagePolicy:
    """Images matching any glob (on the normalised name, e.g. ``ghcr.io/acme/*``) must be
    signed by at least ``threshold`` of ``authorities``; ``mode`` is enforce or warn."""

    name: str
    images: tuple[str, ...]
    authorities: tuple[str, ...]
    threshold: int = 1
    mode: str = "enforce"


@dataclass(frozen=True)
class ImageSettings:
    """Image facts: tag-to-digest resolution and signature verification (input.facts.images)."""

    enabled: bool = False  # off: no registry traffic, no facts.images
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    authorities: tuple[SigningAuthority, ...] = ()
    policies: tuple[ImagePolicy, ...] = ()
    trusted_root: Path | None = None  # Sigstore trusted_root.json; None: the public-good root shipped with sigstore
    cache_ttl_seconds: float = 300.0  # verification results per (digest, authorities)
    negative_cache_ttl_seconds: float = 10.0  # failures (registry down...) are retried soon
    tag_cache_ttl_seconds: float = 10.0  # tag -> digest; short: tags move
    max_concurrency: int = 16  # registry calls in flight per process
    # Credentials from the workload's imagePullSecrets and its service account's, read through
    # the Kubernetes API (kube_api settings) in the workload's own namespace; needs get on
    # secrets and serviceaccounts. Off, or without a Kubernetes client: docker_config only.
    pull_secrets: bool = True
    pull_secret_cache_ttl_seconds: float = 30.0
    # POST /mutate rewrites verified tag-only references to tag@digest (register it with
    # `deployguard render webhook-config --mutating`); the validating webhook still checks.
    mutate_enabled: bool = False


@dataclass(frozen=True)
class KubeApiSettings:
    """How deployguard reads the Kubernetes API (rollout history, break-glass replay state)."""

    kubeconfig: Path | None = None  # None: the in-cluster service account, when there is one
    timeout_seconds: float = 2.0


@dataclass(frozen=True)
class BudgetSettings:
    """Where SLOs are declared and the Prometheus that measures them (error-budget freezes)."""

    prometheus_url: str = ""  # empty: no error-budget facts
    slo_file: Path | None = None  # YAML with a top-level `slos:` list (see webhook/governance/slo.py)
    cache_ttl_seconds: float = 15.0
    query_timeout_seconds: float = 2.0


@dataclass(frozen=True)
class ChangeSettings:
    """How old-vs-new change facts for the risk score are computed."""

    default_time_zone: str = "UTC"  # the team's IANA zone when the workload names none
    time_zone_label: str = "deployguard.io/time-zone"  # workload label or annotation naming the team's zone
    criticality_label: str = "deployguard.io/criticality"
    # Lowest to highest. The namespace's label counts too (read through kube_api): the
    # higher of the two wins, so a workload cannot lower its own criticality.
    criticality_levels: tuple[str, ...] = ("low", "medium", "high", "critical")
    namespace_labels_ttl_seconds: float = 60.0
    business_hours: tuple[int, int] = (9, 18)  # local [start, end) hours on business days
    business_days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0


@dataclass(frozen=True)
class BreakGlassSettings:
    """Who may sign break-glass approvals, and where single use is recorded."""

    # (key id, PEM file of an Ed25519 public key). Keys come from here only, never from the object.
    public_keys: tuple[tuple[str, Path], ...] = ()
    required_approvals: int = 1  # k of the n keys above
    annotation: str = "deployguard.io/break-glass"
    state_namespace: str = "deployguard-system"  # where used token ids are recorded (Leases; the release namespace)
    max_ttl_seconds: int = 4 * 3600
    # Used-token Leases are deleted this long after their token expired (an expired token is
    # refused anyway; the margin covers clock skew); checked every sweep interval (0: never).
    ledger_keep_after_expiry_seconds: int = 3600
    ledger_sweep_interval_seconds: float = 3600.0


@dataclass(frozen=True)
class ObservabilitySettings:
    """Metrics, Kubernetes Events, traces and the decision log's durability."""

    metrics_enabled: bool = True  # GET /metrics on the HTTPS listener
    # Events on the workload for denials and warnings, through kube_api (only when a
    # Kubernetes client is configured: kube_api.kubeconfig or in-cluster).
    events_enabled: bool = True
    events_min_interval_seconds: float = 60.0  # per object and reason; more are dropped
    events_queue_size: int = 256  # pending Events; when full, new ones are dropped, never waited for
    tracing_otlp_endpoint: str = ""  # e.g. http://otel-collector:4318/v1/traces; empty: tracing off
    tracing_service_name: str = "deployguard"
    # fsync the decision log file after every line (survives power loss, costs a disk flush
    # per request); off: flushed to the OS per line (survives a process crash).
    decision_log_fsync: bool = False


@dataclass(frozen=True)
class WindowsSettings:
    """Change windows and freezes (webhook/governance/change_calendar.py): data files and Kubernetes objects."""

    files: tuple[Path, ...] = ()  # YAML with `windows: [...]`; change-windows.yaml in the policy directory is read too
    watch_kubernetes: bool = False  # ChangeFreeze/ChangeWindow objects (charts/deployguard/crds), via kube_api
    resync_seconds: float = 300.0  # a full re-list this often, whatever the watch said
    stale_after_seconds: float = 120.0  # report (warn) when the watch has not listed successfully for this long


@dataclass(frozen=True)
class Settings:
    """Everything, grouped by concern."""

    policy: PolicySettings = field(default_factory=PolicySettings)
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    images: ImageSettings = field(default_factory=ImageSettings)
    kube_api: KubeApiSettings = field(default_factory=KubeApiSettings)
    budgets: BudgetSettings = field(default_factory=BudgetSettings)
    change: ChangeSettings = field(default_factory=ChangeSettings)
    break_glass: BreakGlassSettings = field(default_factory=BreakGlassSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    windows: WindowsSettings = field(default_factory=WindowsSettings)


_OPTIONAL_PATHS = ("directory", "decision_log_path", "kubeconfig", "slo_file", "client_ca_file")


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
        elif key == "public_keys":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(f"config {name}.public_keys must map key ids to PEM file paths")
            values[key] = tuple((str(k), Path(v)) for k, v in value.items())
        elif key in ("business_hours", "business_days"):
            if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
                raise ConfigError(f"config {name}.{key} must be a list of integers")
            values[key] = tuple(value)
        elif key == "files":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"config {name}.files must be a list of paths")
            values[key] = tuple(Path(v) for v in value)
        elif isinstance(default, Path) or key in _OPTIONAL_PATHS:
            values[key] = Path(value) if value is not None else None
        else:
            values[key] = value
    return replace(cls(), **values)


_GOVERNANCE_SECTIONS: dict[str, type[Any]] = {
    "kube_api": KubeApiSettings,
    "budgets": BudgetSettings,
    "change": ChangeSettings,
    "break_glass": BreakGlassSettings,
    "observability": ObservabilitySettings,
    "windows": WindowsSettings,
}


def load_settings(path: Path | None) -> Settings:
    """Read a YAML settings file; ``None`` gives the defaults."""
    if path is None:
        return Settings()
    try:
        raw = yaml_limits.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping")
    unknown = sorted(set(raw) - {"policy", "admission", "server", "images", *_GOVERNANCE_SECTIONS})
    if unknown:
        raise ConfigError(f"config {path}: unknown section(s) {unknown}")
    settings = Settings(
        policy=_section(PolicySettings, raw.get("policy"), "policy"),
        admission=_section(AdmissionSettings, raw.get("admission"), "admission"),
        server=_section(ServerSettings, raw.get("server"), "server"),
        images=_images_section(raw.get("images")),
        **{name: _section(cls, raw.get(name), name) for name, cls in _GOVERNANCE_SECTIONS.items()},
    )
    probe_port = settings.server.probe_port
    if not 0 <= probe_port <= 65535 or (probe_port and probe_port == settings.server.port):
        raise ConfigError(f"server.probe_port must be 0 (none) or a port other than server.port, not {probe_port}")
    if settings.server.max_requests_per_connection < 0:
        raise ConfigError("server.max_requests_per_connection must be 0 (no limit) or more")
    if not settings.server.max_connection_age_seconds >= 0:
        raise ConfigError("server.max_connection_age_seconds must be 0 (no limit) or more")
    if settings.server.memory_release_threshold_mib < 0:
        raise ConfigError("server.memory_release_threshold_mib must be 0 (never) or more")
    if settings.server.max_connections < 0:
        raise ConfigError("server.max_connections must be 0 (no limit) or more")
    if settings.server.probe_max_connections < 0:
        raise ConfigError("server.probe_max_connections must be 0 (no limit) or more")
    if not settings.server.tls_handshake_timeout_seconds >= 0:
        raise ConfigError("server.tls_handshake_timeout_seconds must be 0 (asyncio's 60 s) or more")
    if not settings.server.request_read_timeout_seconds >= 0:
        raise ConfigError("server.request_read_timeout_seconds must be 0 (no limit) or more")
    receiving = settings.server.max_receiving_body_bytes
    if receiving and receiving < settings.admission.max_body_bytes:
        raise ConfigError(
            f"server.max_receiving_body_bytes ({receiving}) must be 0 (no limit) or at least "
            f"admission.max_body_bytes ({settings.admission.max_body_bytes}), or a body of the allowed size never fits"
        )
    if settings.admission.max_map_entries < 0:
        raise ConfigError("admission.max_map_entries must be 0 (no limit) or more")
    if settings.policy.engine not in ("embedded", "opa", "wasm"):
        raise ConfigError(f"policy.engine must be 'embedded', 'opa' or 'wasm', not {settings.policy.engine!r}")
    if not 256 <= settings.admission.max_string_bytes <= MAX_STRING_BYTES_CEILING:
        raise ConfigError(
            f"admission.max_string_bytes must be 256..{MAX_STRING_BYTES_CEILING}, not "
            f"{settings.admission.max_string_bytes} (rego-cpp crashes matching regexes on strings of ~26,000 bytes)"
        )
    return settings


def _images_section(raw: Any) -> ImageSettings:
    """The ``images`` section: nested registry settings, authorities and image policies."""
    if raw is None:
        return ImageSettings()
    if not isinstance(raw, dict):
        raise ConfigError("config section 'images' must be a mapping")
    raw = dict(raw)
    registry = dict(raw.pop("registry", None) or {})
    for key in ("allowed_registries", "private_registries", "plain_http_registries"):
        if key in registry:
            registry[key] = tuple(str(v) for v in registry[key] or ())
    for key in ("ca_bundle", "docker_config"):
        if registry.get(key) is not None:
            registry[key] = Path(registry[key])
    try:
        authorities = tuple(
            SigningAuthority(**{**a, "key": Path(a["key"]) if a.get("key") else None})
            for a in raw.pop("authorities", None) or ()
        )
        policies = tuple(
            ImagePolicy(
                **{**p, "images": tuple(p.get("images") or ()), "authorities": tuple(p.get("authorities") or ())}
            )
            for p in raw.pop("policies", None) or ()
        )
        settings = ImageSettings(
            registry=RegistrySettings(**registry),
            authorities=authorities,
            policies=policies,
        )
        rest: dict[str, Any] = {k: Path(v) if k == "trusted_root" and v is not None else v for k, v in raw.items()}
        settings = replace(settings, **rest)
    except (TypeError, KeyError) as exc:
        raise ConfigError(f"config section 'images': {exc}") from None
    names = {a.name for a in settings.authorities}
    for authority in settings.authorities:
        if (authority.key is None) == (not (authority.identity or authority.identity_regex)):
            raise ConfigError(f"images.authorities {authority.name!r}: give either key or identity/identity_regex")
        for pattern in (authority.identity_regex, authority.issuer_regex):
            if pattern:
                compile_pattern(pattern)  # RE2: linear time, refused here when invalid
    for policy in settings.policies:
        missing = sorted(set(policy.authorities) - names)
        if missing:
            raise ConfigError(f"images.policies {policy.name!r}: unknown authorities {missing}")
        if not 1 <= policy.threshold <= len(policy.authorities):
            raise ConfigError(f"images.policies {policy.name!r}: threshold must be 1..{len(policy.authorities)}")
        if policy.mode not in ("enforce", "warn"):
            raise ConfigError(f"images.policies {policy.name!r}: mode must be enforce or warn")
    return settings
