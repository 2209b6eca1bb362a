"""Real OCI artefacts for the tests: go-containerregistry's ``registry`` on loopback,
images pushed by ``crane``, signatures made by the ``cosign`` CLI (DESIGN.md section 5).

The registry listens on 127.0.0.1, so every deployguard client talking to it must opt
in explicitly (``private_registries`` / ``plain_http_registries``): see ``image_settings``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID

from tests.conftest import tool
from tests.processes import Process, free_port, http_ok
from webhook.config import ImagePolicy, ImageSettings, RegistrySettings, SigningAuthority

SHARED_SIGSTORE = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "sigstore"
FIXTURE_BUNDLE = SHARED_SIGSTORE / "rfc8785-0.1.2-py3-none-any.whl.sigstore.json"
FIXTURE_DIGEST = "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
FIXTURE_IDENTITY = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
FIXTURE_ISSUER = "https://token.actions.githubusercontent.com"


def run(argv: list[str], **env: str) -> str:
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **env}
    )
    if completed.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({completed.returncode}):\n{completed.stderr}")
    return completed.stdout.strip()


class LocalRegistry:
    """go-containerregistry's registry (supports the referrers API) on a free loopback port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.process = Process(f"registry-{self.port}", [str(tool("registry")), "-port", str(self.port)], log_dir)
        self.process.wait_until(lambda: http_ok(f"http://{self.host}/v2/"), 30, "serving /v2/")
        self.client_env: dict[str, str] = {}  # environment for crane/cosign (credentials)

    def stop(self) -> None:
        self.process.stop()


@dataclass(frozen=True)
class KeyPair:
    name: str
    private: Path
    public: Path


def push_image(registry: LocalRegistry, repository: str, tag: str, work: Path) -> str:
    """Push a new one-layer image with random content (``crane append``); return its digest."""
    work.mkdir(parents=True, exist_ok=True)
    content = work / f"content-{secrets.token_hex(4)}.bin"
    content.write_bytes(secrets.token_bytes(256))
    layer = work / f"{content.name}.tar"
    with tarfile.open(layer, "w") as tar:
        tar.add(content, arcname="content.bin")
    ref = f"{registry.host}/{repository}:{tag}"
    run([str(tool("crane")), "append", "--insecure", "-f", str(layer), "-t", ref], **registry.client_env)
    return run([str(tool("crane")), "digest", "--insecure", ref], **registry.client_env)


def generate_key(work: Path, name: str) -> KeyPair:
    """``cosign generate-key-pair`` (ECDSA P-256) with an empty password."""
    work.mkdir(parents=True, exist_ok=True)
    prefix = work / name
    run([str(tool("cosign")), "generate-key-pair", "--output-key-prefix", str(prefix)], COSIGN_PASSWORD="")
    return KeyPair(name, prefix.with_suffix(".key"), prefix.with_suffix(".pub"))


def cosign_sign(key: KeyPair, reference: str, **env: str) -> None:
    """``cosign sign`` in the classic format, offline (no transparency log upload)."""
    run(
        [
            str(tool("cosign")), "sign", "--key", str(key.private), "--tlog-upload=false", "--yes",
            "--allow-insecure-registry", "--allow-http-registry", reference,
        ],
        COSIGN_PASSWORD="",
        **env,
    )  # fmt: skip


def push_signed_image(registry: LocalRegistry, repository: str, tag: str, work: Path, key: KeyPair) -> str:
    """``push_image``, then ``cosign_sign`` it by digest with ``key`` (with the registry's credentials): its digest."""
    digest = push_image(registry, repository, tag, work)
    cosign_sign(key, f"{registry.host}/{repository}@{digest}", **registry.client_env)
    return digest


def crane_tag(reference: str, tag: str) -> None:
    run([str(tool("crane")), "tag", "--insecure", reference, tag])


def upload_blob(registry: LocalRegistry, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    base = f"http://{registry.host}/v2/{repository}/blobs/uploads/"
    started = httpx.post(base)
    started.raise_for_status()
    location = httpx.URL(base).join(started.headers["location"])
    httpx.put(location, params={"digest": digest}, content=data).raise_for_status()
    return digest


def put_manifest(registry: LocalRegistry, repository: str, reference: str, manifest: dict[str, object]) -> str:
    body = json.dumps(manifest).encode()
    media_type = str(manifest.get("mediaType", "application/vnd.oci.image.manifest.v1+json"))
    response = httpx.put(
        f"http://{registry.host}/v2/{repository}/manifests/{reference}",
        content=body,
        headers={"Content-Type": media_type},
    )
    response.raise_for_status()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def attach_referrer(
    registry: LocalRegistry, repository: str, subject: str, artifact_type: str, layer_type: str, data: bytes
) -> str:
    """Push an OCI artifact manifest whose ``subject`` is ``subject`` (how cosign attaches bundles)."""
    empty = upload_blob(registry, repository, b"{}")
    layer = upload_blob(registry, repository, data)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": layer_type, "digest": layer, "size": len(data)}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 0},
    }
    body = json.dumps(manifest).encode()
    digest = put_manifest(registry, repository, "sha256:" + hashlib.sha256(body).hexdigest(), manifest)
    probe = httpx.get(f"http://{registry.host}/v2/{repository}/referrers/{subject}")
    if probe.status_code == 404:
        # No referrers API (go-containerregistry's cmd/registry): the client keeps the
        # fallback index at tag sha256-<hex> itself, as the OCI distribution spec says.
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "size": len(body),
                    "artifactType": artifact_type,
                }
            ],
        }
        put_manifest(registry, repository, subject.replace(":", "-"), index)
    return digest


def image_settings(
    registry_host: str,
    authorities: tuple[SigningAuthority, ...] = (),
    policies: tuple[ImagePolicy, ...] = (),
    **registry_overrides: object,
) -> ImageSettings:
    """Images settings for a loopback registry: it is explicitly allowed as a private, plain-HTTP registry."""
    registry = RegistrySettings(
        private_registries=(registry_host,),
        plain_http_registries=(registry_host,),
        **registry_overrides,  # type: ignore[arg-type]
    )
    return ImageSettings(
        enabled=True,
        registry=registry,
        authorities=authorities,
        policies=policies,
        tag_cache_ttl_seconds=0.0,
    )


def signed_images_config(registry_host: str, key: KeyPair, **options: object) -> dict[str, object]:
    """The ``images`` section of a deployguard config file: images under ``registry_host/shop/`` must be
    signed with ``key`` (authority ``release-key``, image policy ``shop-images``); the loopback registry is
    explicitly allowed as a private, plain-HTTP one. ``options`` are more keys of the section."""
    return {
        "enabled": True,
        **options,
        "registry": {"private_registries": [registry_host], "plain_http_registries": [registry_host]},
        "authorities": [{"name": "release-key", "key": str(key.public)}],
        "policies": [{"name": "shop-images", "images": [f"{registry_host}/shop/*"], "authorities": ["release-key"]}],
    }


# ---- fixtures: a tier's conftest.py imports the ones its tests use ----


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A loopback registry of the test module's own."""
    reg = LocalRegistry(tmp_path_factory.mktemp("registry-logs"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def release_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """A cosign key pair named ``release``, of the test module's own."""
    return generate_key(tmp_path_factory.mktemp("keys"), "release")


# ---- a registry that requires credentials: Debian's docker-registry (distribution 2.8) ----


def docker_registry_binary() -> Path:
    """Debian's ``docker-registry``; missing, the test fails with what to install (never a skip)."""
    found = shutil.which("docker-registry")
    if found is None:
        pytest.fail("docker-registry is not installed; run: apt-get install docker-registry (scripts/test.sh does)")
    return Path(found)


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry (the only format distribution accepts), made by ``htpasswd -B``."""
    if shutil.which("htpasswd") is None:
        pytest.fail("htpasswd is not installed; run: apt-get install apache2-utils (scripts/test.sh does)")
    return run(["htpasswd", "-Bbn", user, password])


def docker_config_dir(target: Path, host: str, user: str, password: str) -> Path:
    """A DOCKER_CONFIG directory whose config.json holds ``user``/``password`` for ``host``."""
    target.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (target / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return target


class TokenServer:
    """A Docker token service (the Bearer flow): checks Basic credentials and issues an ES256
    JWT signed by a key whose self-signed certificate the registry trusts (``x5c`` header).
    Anonymous callers get a token without access, as public registries do for private repos."""

    def __init__(self, work: Path, users: dict[str, str], service: str = "deployguard-test-registry") -> None:
        self.service, self.issuer, self.users = service, "deployguard-test-token-issuer", users
        self.requests: list[str] = []  # the Authorization user per token request ('' anonymous)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token-signer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )  # fmt: skip
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        work.mkdir(parents=True, exist_ok=True)
        self.root_bundle = work / "token-root.pem"
        self.root_bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                user = server.authenticated(self.headers.get("Authorization", ""))
                if user is None:
                    self.send_response(401)
                    self.end_headers()
                    return
                server.requests.append(user)
                body = json.dumps({"token": server.token(user, query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self._http.server_address[1]}/token"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def authenticated(self, header: str) -> str | None:
        """'' for anonymous, the user for good Basic credentials, None for bad ones."""
        if not header:
            return ""
        scheme, _, value = header.partition(" ")
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        if scheme.lower() == "basic" and self.users.get(user) == password:
            return user
        return None

    def token(self, user: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes if user else []:
            kind, _, rest = scope.partition(":")
            repository, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": repository, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user, "aud": self.service, "iat": now, "nbf": now - 10,
                  "exp": now + 300, "jti": secrets.token_hex(8), "access": access}  # fmt: skip
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = utils.decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


class AuthRegistry(LocalRegistry):
    """Debian's docker-registry on loopback requiring credentials: htpasswd (Basic) or a
    token service (Bearer). ``client_env`` lets crane and cosign push with the credentials."""

    def __init__(
        self, log_dir: Path, work: Path, *, user: str, password: str, token_server: TokenServer | None = None
    ) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        work.mkdir(parents=True, exist_ok=True)
        if token_server is None:
            (work / "htpasswd").write_text(htpasswd_line(user, password) + "\n")
            auth: dict[str, object] = {"htpasswd": {"realm": "deployguard-test", "path": str(work / "htpasswd")}}
        else:
            t = token_server
            auth = {"token": {"realm": t.realm, "service": t.service, "issuer": t.issuer,
                              "rootcertbundle": str(t.root_bundle)}}  # fmt: skip
        config = {
            "version": 0.1,
            "log": {"level": "info"},
            "storage": {"filesystem": {"rootdirectory": str(work / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.host},
            "auth": auth,
        }
        (work / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        self.client_env = {"DOCKER_CONFIG": str(docker_config_dir(work / "docker", self.host, user, password))}
        self.token_realm = token_server.realm if token_server is not None else ""
        argv = [str(docker_registry_binary()), "serve", str(work / "config.yml")]
        self.process = Process(f"docker-registry-{self.port}", argv, log_dir)
        self.process.wait_until(lambda: _answers_401(f"http://{self.host}/v2/"), 30, "asking for credentials on /v2/")


def auth_registry(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    *,
    user: str,
    password: str,
    token_server: TokenServer | None = None,
) -> Iterator[AuthRegistry]:
    """An ``AuthRegistry`` working in a new temporary directory ``name``, for a fixture to ``yield from``:
    it is stopped at the fixture's teardown."""
    work = tmp_path_factory.mktemp(name)
    reg = AuthRegistry(work / "logs", work, user=user, password=password, token_server=token_server)
    yield reg
    reg.stop()


def _answers_401(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 401
