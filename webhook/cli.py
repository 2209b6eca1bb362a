"""The ``deployguard`` command line: serve, check, certs, render, policy."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, cast

import typer
import yaml

from webhook.check import ManifestError, check_objects, outcome_json, outcome_text, read_manifests
from webhook.cli_audit import audit_app
from webhook.cli_certs_kube import certs_kube
from webhook.cli_governance import break_glass_app, budget_app
from webhook.cli_image import image_app
from webhook.cli_windows import windows_app
from webhook.config import EngineName, Settings, load_settings
from webhook.engines import make_offline_engine
from webhook.engines.renumbering import compile_in_child
from webhook.errors import DeployguardError
from webhook.facts.setup import build_gatherers
from webhook.observe.decision_log import DecisionLog
from webhook.observe.log_format import configure_logging
from webhook.policy_bundle import default_policy_dir, load_bundle
from webhook.policy_store import PolicyStore
from webhook.policy_testing import run_tests
from webhook.reviewer import Reviewer
from webhook.tls import CertificatePaths, generate_certificates, service_names
from webhook.webhook_config import WebhookRegistration, render_webhook_configuration

app = typer.Typer(
    help="deployguard: an admission webhook that guards deploys.", no_args_is_help=True, pretty_exceptions_enable=False
)
certs_app = typer.Typer(help="Certificates for the webhook's TLS.", no_args_is_help=True)
render_app = typer.Typer(help="Render Kubernetes manifests.", no_args_is_help=True)
policy_app = typer.Typer(help="Policy authoring.", no_args_is_help=True)
app.add_typer(certs_app, name="certs")
certs_app.command("kube")(certs_kube)  # the Helm chart's certificate Job
app.add_typer(render_app, name="render")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.add_typer(image_app, name="image")
app.add_typer(windows_app, name="windows")
app.add_typer(break_glass_app, name="break-glass")
app.add_typer(budget_app, name="budget")

ConfigOption = Annotated[Path | None, typer.Option("--config", help="settings YAML (see README)")]
PoliciesOption = Annotated[
    Path | None,
    typer.Option("--policies", help="policy directory (default: the policies shipped with deployguard)"),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"deployguard: {message}", err=True)
    return typer.Exit(code)


def _settings(config: Path | None, policies: Path | None) -> Settings:
    try:
        settings = load_settings(config)
    except DeployguardError as exc:
        raise _fail(str(exc)) from None
    if policies is not None:
        settings = replace(settings, policy=replace(settings.policy, directory=policies))
    return settings


@app.command()
def serve(
    config: ConfigOption = None,
    policies: PoliciesOption = None,
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTPS port")] = None,
    cert: Annotated[Path | None, typer.Option(help="serving certificate (PEM)")] = None,
    key: Annotated[Path | None, typer.Option(help="serving key (PEM)")] = None,
    engine: Annotated[str | None, typer.Option(help="embedded | opa | wasm (needs policy.opa_binary)")] = None,
    opa_url: Annotated[str | None, typer.Option(help="OPA server for --engine opa")] = None,
    decision_log: Annotated[Path | None, typer.Option(help="also append decisions to this file")] = None,
    dev_certs: Annotated[bool, typer.Option(help="generate a throwaway CA and localhost cert first")] = False,
    workers: Annotated[int | None, typer.Option(help="processes sharing the port, one core each")] = None,
) -> None:
    """Serve the admission webhook over HTTPS (POST /validate, /healthz, /readyz)."""
    from webhook.serve import ensure_dev_certificates, serve_forever

    settings = _settings(config, policies)
    server = settings.server
    server = replace(
        server,
        host=host or server.host,
        port=port or server.port,
        certfile=cert or server.certfile,
        keyfile=key or server.keyfile,
        workers=workers or server.workers,
    )
    chosen = engine or settings.policy.engine
    if chosen not in ("embedded", "opa", "wasm"):
        raise _fail(f"--engine must be embedded, opa or wasm, not {chosen!r}")
    policy = replace(
        settings.policy,
        engine=cast(EngineName, chosen),
        opa_url=opa_url or settings.policy.opa_url,
    )
    admission = replace(settings.admission, decision_log_path=decision_log or settings.admission.decision_log_path)
    settings = replace(settings, server=server, policy=policy, admission=admission)
    configure_logging()
    try:
        if dev_certs:
            ca = ensure_dev_certificates(server.certfile, server.keyfile)
            typer.echo(f"development CA: {ca} (curl --cacert {ca} https://localhost:{server.port}/healthz)", err=True)
        if not server.certfile.exists() or not server.keyfile.exists():
            raise _fail(
                f"no serving certificate at {server.certfile} / {server.keyfile}; "
                "create one with `deployguard certs generate` or pass --dev-certs"
            )
        if settings.server.workers > 1:
            from webhook.workers import serve_workers

            raise typer.Exit(serve_workers(settings, settings.server.workers))
        serve_forever(settings)
    except DeployguardError as exc:
        raise _fail(str(exc), 1) from None
    except KeyboardInterrupt:
        pass


@app.command()
def check(
    file: Annotated[Path, typer.Option("-f", "--file", help="manifest(s) to check; - for stdin")],
    old: Annotated[Path | None, typer.Option("--old", help="the current objects: check as an update")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text | json")] = "text",
    config: ConfigOption = None,
    policies: PoliciesOption = None,
    explain: Annotated[bool, typer.Option("--explain", help="list every rule evaluated and why it fired or not")] = (
        False
    ),
    record_case: Annotated[
        Path | None, typer.Option("--record-case", help="write a policy case file: objects, gathered facts, decision")
    ] = None,
) -> None:
    """Evaluate manifests offline as the webhook would. Exit 0 allow, 1 deny, 2 bad input."""
    if output not in ("text", "json"):
        raise _fail("--output must be text or json")
    settings = _settings(config, policies)
    directory = settings.policy.directory or default_policy_dir()
    try:
        objects = read_manifests(file)
        old_objects = read_manifests(old) if old else []
    except ManifestError as exc:
        raise _fail(str(exc)) from None
    if not objects:
        raise _fail(f"{file} holds no Kubernetes objects")

    async def run() -> list[dict[str, object]]:
        engine = make_offline_engine(settings.policy)
        store = PolicyStore(directory, engine)
        await store.reload()
        if not engine.revision:
            raise _fail(f"policies in {directory} cannot be used: {store.last_error}")
        reviewer = Reviewer(
            engine,
            admission=settings.admission,
            policy=settings.policy,
            log=DecisionLog(stream=io.StringIO()),
            gatherers=build_gatherers(settings),
        )
        for gatherer in reviewer.gatherers:  # watched sources (the windows watch) are listed once instead
            prime = getattr(gatherer, "prime", None)
            if callable(prime):
                prime()
        outcomes = await check_objects(reviewer, objects, old_objects)
        if record_case is not None:
            from webhook.policy_cases import write_recorded_cases

            try:
                write_recorded_cases(record_case, outcomes, objects, old_objects)
            except DeployguardError as exc:
                raise _fail(str(exc)) from None
        if explain:
            from webhook.cli_policy_cases import explained_outcomes

            return explained_outcomes(directory, outcomes, text=output == "text")
        if output == "text":
            for outcome in outcomes:
                typer.echo(outcome_text(outcome))
        return [outcome_json(o) for o in outcomes]

    results = asyncio.run(run())
    if output == "json":
        typer.echo(json.dumps(results, indent=2))
    raise typer.Exit(0 if all(r["allowed"] for r in results) else 1)


@certs_app.command("generate")
def certs_generate(
    out: Annotated[Path, typer.Option(help="output directory")] = Path("certs/generated"),
    service: Annotated[str, typer.Option(help="Service name")] = "deployguard",
    namespace: Annotated[str, typer.Option(help="Service namespace")] = "deployguard",
    dns: Annotated[list[str] | None, typer.Option(help="extra DNS name (repeatable)")] = None,
    ip: Annotated[list[str] | None, typer.Option(help="IP address SAN (repeatable)")] = None,
    days: Annotated[int, typer.Option(help="serving certificate lifetime")] = 365,
    new_ca: Annotated[bool, typer.Option(help="replace an existing CA in --out")] = False,
) -> None:
    """Create a CA and a serving certificate; print the caBundle (base64 PEM) on stdout."""
    names = service_names(service, namespace) + list(dns or [])
    paths = generate_certificates(
        out, dns_names=names, ip_addresses=list(ip or []), valid_days=days, reuse_ca=not new_ca
    )
    typer.echo(
        f"wrote {paths.ca_cert}, {paths.cert}, {paths.key} (SANs: {', '.join(names + list(ip or []))})", err=True
    )
    typer.echo(paths.ca_bundle())


@render_app.command("webhook-config")
def render_webhook_config(
    ca_file: Annotated[
        Path, typer.Option("--ca-file", help="CA certificate (PEM) that signed the serving cert")
    ] = Path("certs/generated/ca.crt"),
    url: Annotated[
        str, typer.Option(help="call this URL instead of a Service (e.g. https://127.0.0.1:8443/validate)")
    ] = "",
    service: Annotated[str, typer.Option(help="Service name")] = "deployguard",
    namespace: Annotated[str, typer.Option(help="the webhook's namespace (exempted)")] = "deployguard",
    failure_policy: Annotated[str, typer.Option(help="Fail (closed) or Ignore (open)")] = "Fail",
    timeout: Annotated[int, typer.Option(help="timeoutSeconds (1-30)")] = 10,
    exempt_namespace: Annotated[list[str] | None, typer.Option(help="more namespaces to exempt")] = None,
    include_delete: Annotated[bool, typer.Option(help="also send DELETE requests")] = False,
    name: Annotated[str, typer.Option(help="configuration name")] = "deployguard",
    mutating: Annotated[
        bool, typer.Option(help="the MutatingWebhookConfiguration for /mutate (images.mutate_enabled) instead")
    ] = False,
) -> None:
    """Print a ValidatingWebhookConfiguration (or, with --mutating, a MutatingWebhookConfiguration) (YAML)."""
    try:
        ca_bundle = CertificatePaths(ca_file, ca_file, ca_file, ca_file).ca_bundle()
    except OSError as exc:
        raise _fail(f"cannot read the CA {ca_file}: {exc.strerror}") from None
    registration = WebhookRegistration(
        ca_bundle=ca_bundle,
        url=url,
        service_name=service,
        service_namespace=namespace,
        name=name,
        failure_policy=failure_policy,
        timeout_seconds=timeout,
        exempt_namespaces=("kube-system", namespace, *(exempt_namespace or [])),
        include_delete=include_delete,
        mutating=mutating,
    )
    try:
        manifest = render_webhook_configuration(registration)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    typer.echo(yaml.safe_dump(manifest, sort_keys=False))


@policy_app.command("test")
def policy_test(
    policies: PoliciesOption = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="list every test")] = False,
    cases: Annotated[
        Path | None, typer.Option("--cases", help="case files (default: policy-cases/ beside the policies, if any)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run the policies' Rego tests on the embedded engine (`opa test` runs them on OPA) and the case
    files on the in-process engine the settings name (wasm, else embedded)."""
    directory = policies or default_policy_dir()
    try:
        bundle = load_bundle(directory)
        # In a child first, tests included: a module that crashes rego-cpp is reported
        # (PolicyLoadError), not an abort here.
        asyncio.run(compile_in_child(replace(bundle, modules=bundle.modules + bundle.tests, tests=())))
        results = run_tests(bundle)
    except DeployguardError as exc:
        raise _fail(str(exc), 1) from None
    except Exception as exc:  # the engine's compile errors come as its own type
        raise _fail(f"policies in {directory} do not compile: {exc}", 1) from None
    failed = [r for r in results if not r.passed]
    for result in results:
        if verbose or not result.passed:
            status = "PASS" if result.passed else f"FAIL {result.detail}"
            typer.echo(f"{result.qualified}: {status}")
    typer.echo("-" * 40)
    typer.echo(f"PASS: {len(results) - len(failed)}/{len(results)}" + (f"\nFAIL: {len(failed)}" if failed else ""))
    if not results:
        raise _fail(f"no test_* rules found in {directory}", 1)
    from webhook.cli_policy_cases import test_cases

    case_failures = test_cases(directory, cases, _settings(config, directory), verbose=verbose)
    raise typer.Exit(1 if failed or case_failures else 0)


def main() -> None:
    app()
