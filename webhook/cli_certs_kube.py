"""`deployguard certs kube`: the Helm chart's certificate Job (install, upgrade, rotation)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from webhook.cert_install import InstallTarget, KubernetesCertificateStore, install_certificates
from webhook.errors import DeployguardError


def certs_kube(
    namespace: Annotated[str, typer.Option(help="namespace of the Service and Secrets")],
    secret: Annotated[str, typer.Option(help="Secret for tls.crt, tls.key and ca.crt (the CA bundle)")],
    ca_secret: Annotated[str, typer.Option("--ca-secret", help="Secret for the CA (never mounted by the webhook)")],
    webhook: Annotated[str, typer.Option(help="ValidatingWebhookConfiguration whose caBundle to set")],
    service: Annotated[str, typer.Option(help="Service name (the certificate's DNS names)")] = "deployguard",
    days: Annotated[int, typer.Option(help="serving certificate lifetime")] = 365,
    renew_before_days: Annotated[int, typer.Option(help="renew when fewer days than this remain")] = 30,
    kubeconfig: Annotated[Path | None, typer.Option(help="default: the in-cluster service account")] = None,
) -> None:
    """Create or renew the webhook's CA and certificate in Secrets and set the caBundle. Idempotent."""
    if not 1 <= renew_before_days < days:
        typer.echo("deployguard: --renew-before-days must be at least 1 and below --days", err=True)
        raise typer.Exit(2)
    target = InstallTarget(
        namespace=namespace,
        tls_secret=secret,
        ca_secret=ca_secret,
        service=service,
        webhook=webhook,
        valid_days=days,
        renew_before_days=renew_before_days,
    )
    try:
        store = KubernetesCertificateStore(namespace, kubeconfig)
        result = install_certificates(store, target, now=dt.datetime.now(dt.UTC))
    except DeployguardError as exc:
        typer.echo(f"deployguard: {exc}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # the client's configuration errors (no kubeconfig, no in-cluster token)
        typer.echo(f"deployguard: cannot reach the Kubernetes API: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.summary(target))
