"""CertificateReloader: which changes cut open connections (served end to end in
tests/integration/test_tls_hardening.py)."""

from __future__ import annotations

from pathlib import Path

from webhook.tls import CertificateReloader, generate_certificates, server_context


def _replace(path: Path, content: bytes) -> None:
    """Atomically, as the kubelet updates a mounted Secret (a new inode each time)."""
    staged = path.with_suffix(".new")
    staged.write_bytes(content)
    staged.replace(path)


def test_only_a_changed_client_ca_closes_connections(tmp_path: Path) -> None:
    serving = generate_certificates(tmp_path / "serving", dns_names=["localhost"])
    client_ca = tmp_path / "client-ca.crt"
    _replace(client_ca, generate_certificates(tmp_path / "ca-1", dns_names=["a"]).ca_cert.read_bytes())
    closes: list[int] = []

    def close_connections() -> int:
        closes.append(1)
        return 3

    context = server_context(serving.cert, serving.key, client_ca)
    reloader = CertificateReloader(context, serving.cert, serving.key, client_ca, on_client_ca_change=close_connections)

    renewed = generate_certificates(tmp_path / "renewed", dns_names=["localhost"])  # a new serving certificate
    _replace(serving.cert, renewed.cert.read_bytes())
    _replace(serving.key, renewed.key.read_bytes())
    assert reloader.check() and not closes  # the clients' trust is unchanged: connections stay

    _replace(client_ca, client_ca.read_bytes())  # rewritten, same content
    assert reloader.check() and not closes

    _replace(client_ca, b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    assert not reloader.check() and not closes  # not loaded: nothing changes

    _replace(client_ca, generate_certificates(tmp_path / "ca-2", dns_names=["b"]).ca_cert.read_bytes())
    assert reloader.check() and closes == [1]
    assert reloader.current is not context
