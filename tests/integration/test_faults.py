"""Fault injection under load against a real ``deployguard serve`` process.

Each test drives a few seconds of concurrent HTTPS load (tests/faults.py) while a real
dependency misbehaves: the OPA sidecar is SIGKILLed and restarted, the registry (behind
a TCP fault proxy) becomes slow, answers 503 or refuses connections, Prometheus goes
away, the process gets SIGTERM, the serving certificate is rotated. Every test checks
that each request got an answer (before a generous client timeout; durations are
printed, never asserted), that the answer follows the configured fail mode, what
/readyz says, that the service recovers by itself, and that the decision log holds
exactly one line per answered request.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import signal
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from tests.counters import total
from tests.factories import PINNED, admission_review, workload
from tests.faults import (
    Load,
    assert_all_answered,
    assert_log_matches,
    base_url,
    client_context,
    policies_allowing,
    readyz,
    review_body,
    running,
    scrape,
    served,
    under_load,
    until,
)
from tests.integration.conftest import OpaServer
from tests.integration.test_error_budget_prometheus import SLO, Exporter, PrometheusServer
from tests.oci import KeyPair, LocalRegistry, generate_key, push_signed_image
from tests.processes import Process, free_port
from webhook.tls import generate_certificates

pytestmark = pytest.mark.integration


async def wait_ready(base: str, ca: Path, want: bool, timeout: float = 30) -> dict[str, Any]:
    """Poll /readyz until it says ``want``; fail with the last body otherwise."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    body: dict[str, Any] = {}
    while loop.time() < end:
        status, body = await readyz(base, ca)
        if (status == 200) == want:
            return body
        await asyncio.sleep(0.1)
    pytest.fail(f"/readyz never became {'ready' if want else 'unready'}; last body: {body}")


# --------------------------------------------------------------------------- OPA sidecar


async def test_opa_killed_mid_load_denies_then_heals(tmp_path: Path, opa: OpaServer) -> None:
    server = served(tmp_path, tmp_path / "logs", {
        "policy": {"engine": "opa", "opa_url": opa.url, "reload_interval_seconds": 0.5},
        "admission": {"deadline_seconds": 3},
    })  # fmt: skip
    with running(server):
        base, load = base_url(server), Load(phase="healthy")
        async with under_load(load, server, seconds=60):
            await asyncio.sleep(1.0)

            assert opa.process is not None
            killed = time.monotonic()
            await asyncio.to_thread(opa.process.stop, signal.SIGKILL)  # mid-load, no goodbye
            load.enter("down")
            body = await wait_ready(base, server.ca_file, want=False)
            assert "not answering" in body.get("reason", ""), body
            await asyncio.sleep(1.5)

            load.enter("restarting")
            await asyncio.to_thread(opa.start)  # same port, an empty OPA: deployguard must push its revision again
            await wait_ready(base, server.ca_file, want=True)
            load.enter("recovered")
            await asyncio.sleep(1.0)

    for phase in ("healthy", "down", "restarting", "recovered"):
        print(load.summary(phase))
    assert_all_answered(load)
    # Before the kill, the compliant workload is allowed (a request in flight at the kill may be denied).
    healthy = [a for a in load.of("healthy") if a.started + a.seconds < killed]
    assert healthy and all(a.allowed for a in healthy), [a.message for a in healthy if not a.allowed][:2]
    # Fail closed: with OPA gone, nothing is admitted, and the reason says why.
    down = load.settled("down")  # sent and answered while OPA was dead
    assert down and not any(a.allowed for a in down), [(a.name, a.started - killed) for a in down if a.allowed]
    assert all("unreachable" in a.message or "not answering" in a.message for a in down), down[0].message
    recovered = load.of("recovered")
    assert recovered and all(a.allowed for a in recovered), [a.message for a in recovered if not a.allowed][:2]
    assert_log_matches(load, server)


# --------------------------------------------------------------------------- registry


@pytest.fixture
async def proxied(registry: LocalRegistry) -> AsyncIterator[Any]:
    from tests.faults import FaultProxy

    host, port = registry.host.split(":")
    proxy = FaultProxy(host, int(port), free_port())
    await proxy.start()
    yield proxy
    await proxy.close()


def image_config(tmp_path: Path, host: str, public_key: Path, *, timeout: float, deadline: float = 4) -> dict[str, Any]:
    """Signatures enforced for ``host/shop/*`` with one cosign key, no caches: every request asks the registry.

    ``retries`` stays at its default (1): a kept-alive connection the other side has just
    closed ("server disconnected without sending a response") is retried, as in production.
    """
    return {
        "policy": {"directory": str(policies_allowing(tmp_path, host))},
        "admission": {"deadline_seconds": deadline},
        "images": {
            "enabled": True,
            "registry": {"private_registries": [host], "plain_http_registries": [host],
                         "timeout_seconds": timeout},
            "cache_ttl_seconds": 0, "negative_cache_ttl_seconds": 0, "tag_cache_ttl_seconds": 0,
            "authorities": [{"name": "release", "key": str(public_key)}],
            "policies": [{"name": "shop", "images": [f"{host}/shop/*"], "authorities": ["release"]}],
        },
    }  # fmt: skip


async def signed_image(tmp_path: Path, registry: LocalRegistry) -> tuple[KeyPair, str]:
    """A freshly pushed image signed by cosign with a new key: (key, digest)."""
    key = await asyncio.to_thread(generate_key, tmp_path / "keys", "release")
    digest = await asyncio.to_thread(push_signed_image, registry, "shop/web", "v1", tmp_path / "img", key)
    return key, digest


async def test_registry_slow_erroring_and_down_fails_closed_and_recovers(
    tmp_path: Path, registry: LocalRegistry, proxied: Any
) -> None:
    key, digest = await signed_image(tmp_path, registry)
    image = f"{proxied.host}/shop/web@{digest}"  # the webhook reaches the registry only through the proxy
    server = served(tmp_path, tmp_path / "logs", image_config(tmp_path, proxied.host, key.public, timeout=1))
    with running(server):
        base, load = base_url(server), Load(phase="healthy")
        states: dict[str, tuple[int, dict[str, Any]]] = {}
        async with under_load(load, server, seconds=60, concurrency=6, make_body=lambda: review_body(image)):
            await asyncio.sleep(1.0)
            # A slow answer takes the whole facts budget (~3 s): that phase lasts long enough to see some.
            for mode, delay, seconds in (("slow", 5.0, 7.0), ("error", 0, 2.5), ("down", 0, 2.5), ("pass", 0, 2.5)):
                load.enter(f"switching to {mode}")
                await proxied.set_mode(mode, delay=delay)
                load.enter(mode)
                await asyncio.sleep(seconds)
                states[mode] = await readyz(base, server.ca_file)
        metrics = await scrape(base, server.ca_file)

    for phase in ("healthy", "slow", "error", "down", "pass"):
        print(load.summary(phase))
    assert_all_answered(load)
    healthy = load.settled("healthy")
    assert healthy and all(a.allowed for a in healthy), [a.message for a in healthy if not a.allowed][:2]
    # Signatures fail closed: an image that could not be verified is denied, saying why.
    for phase in ("slow", "error", "down"):
        answers = load.settled(phase)
        assert answers and not any(a.allowed for a in answers), (phase, [a.message for a in answers][:1])
        assert all("could not verify" in a.message for a in answers), (phase, [a.message for a in answers][:1])
    assert any("503" in a.message for a in load.of("error")), load.of("error")[0].message
    # A registry fault is a fact about images, not about deployguard: it stays ready.
    assert all(status == 200 for status, _ in states.values()), states
    # Recovered by itself: no restart, no cache to wait out.
    # (A request sent in the first instant may still join a registry call of the fault phase: single flight.)
    recovered = load.later("pass", 0.5)
    assert recovered and all(a.allowed for a in recovered), recovered[0].message
    assert_log_matches(load, server)
    # /metrics of the served process tells the same story: round trips to the registry (by its
    # host) that worked and that failed, each failure an upstream error, verdicts of both kinds.
    round_trips = "deployguard_registry_requests_total"
    assert total(metrics, round_trips, registry=proxied.host, operation="signature", result="ok") > 0
    assert total(metrics, round_trips, registry=proxied.host, operation="signature", result="error") > 0
    assert total(metrics, "deployguard_upstream_errors_total", upstream="registry") > 0
    for result in ("verified", "error"):
        assert total(metrics, "deployguard_signature_verifications_total", result=result) > 0, result


# --------------------------------------------------------------------------- SIGTERM


async def test_sigterm_under_load_answers_in_flight_refuses_new_and_exits(
    tmp_path: Path, registry: LocalRegistry, proxied: Any
) -> None:
    """Requests held ~2 s by a slow registry are in flight when SIGTERM arrives."""
    key, digest = await signed_image(tmp_path, registry)
    image = f"{proxied.host}/shop/web@{digest}"
    server = served(tmp_path, tmp_path / "logs", image_config(tmp_path, proxied.host, key.public, timeout=4,
                                                              deadline=8))  # fmt: skip
    with running(server):
        assert server.process is not None
        process = server.process
        await proxied.set_mode("slow", delay=1.0)  # each request: manifest + signatures, ~2 s in all
        load = Load(phase="before")
        async with under_load(load, server, seconds=60, concurrency=8, make_body=lambda: review_body(image)):
            await asyncio.sleep(2.5)  # the first requests are answered, the next ones are in flight
            signalled = time.monotonic()
            os.killpg(process.pid, signal.SIGTERM)
            load.enter("after")
            grace = 20.0  # uvicorn's timeout_graceful_shutdown in webhook/serve.py
            code = await asyncio.to_thread(process.proc.wait, grace + 5)
            exited = time.monotonic()
            await asyncio.sleep(0.5)  # a few attempts against the closed port

    before = load.of("before")
    after = load.of("after")
    in_flight = [a for a in before if a.started + a.seconds > signalled]
    print(load.summary("before"), "|", load.summary("after"), f"| in flight at SIGTERM: {len(in_flight)}",
          f"| exit {code} after {exited - signalled:.2f} s")  # fmt: skip
    # uvicorn re-raises the signal once it has shut down, so a graceful exit reads as "killed by SIGTERM"
    # (143 to Kubernetes); anything else (a crash, our SIGKILL after the timeout) fails here.
    assert code in (0, -signal.SIGTERM), process.log_tail()
    # Every request sent before SIGTERM was answered, with the right decision; some were still in flight.
    assert in_flight, "no request was in flight at SIGTERM; the test proves nothing"
    assert all(a.status == 200 and a.allowed for a in before), [a for a in before if not a.allowed][:2]
    # New requests stop: once the listener closed, connections are refused (the process is still draining).
    refused = [a for a in after if not a.answered]
    assert any(a.started < exited for a in refused), "no request was refused while the process drained"
    assert all(a.allowed for a in after if a.answered)  # sent in the instant before uvicorn saw the signal
    assert_log_matches(load, server)


# --------------------------------------------------------------------------- certificate rotation


def served_serial(port: int, context: ssl.SSLContext) -> int:
    """The serial number of the certificate a new TLS handshake is served."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_certificate_rotation_under_load_fails_no_handshake(tmp_path: Path) -> None:
    """Renewal with the same CA, then a CA roll-over the client was told about first (a two-CA bundle)."""
    server = served(tmp_path, tmp_path / "logs", {})
    with running(server):
        context = client_context(server.ca_file)
        serials = [served_serial(server.port, context)]
        load = Load(phase="rotating")
        async with under_load(load, server, seconds=60, concurrency=6, keepalive=False, context=context):
            for round_ in range(4):
                await asyncio.sleep(0.7)
                if round_ < 3:  # renewal: same CA, new key and certificate
                    await asyncio.to_thread(generate_certificates, server.cert_dir, dns_names=["localhost"],
                                            ip_addresses=["127.0.0.1"])  # fmt: skip
                else:  # CA roll-over: the client trusts the new CA first, then the server switches
                    staging = await asyncio.to_thread(generate_certificates, tmp_path / "new-ca",
                                                      dns_names=["localhost"], ip_addresses=["127.0.0.1"],
                                                      reuse_ca=False)  # fmt: skip
                    context.load_verify_locations(cafile=str(staging.ca_cert))
                    for name in ("tls.key", "tls.crt"):  # key first: the reloader keys on the certificate
                        shutil.copy(staging.cert.parent / name, server.cert_dir / f"{name}.new")
                        os.replace(server.cert_dir / f"{name}.new", server.cert_dir / name)
                wanted = x509.load_pem_x509_certificate((server.cert_dir / "tls.crt").read_bytes()).serial_number
                for _ in range(100):  # the reloader polls every 0.2 s
                    if served_serial(server.port, context) == wanted:
                        break
                    await asyncio.sleep(0.05)
                serials.append(served_serial(server.port, context))
            await asyncio.sleep(0.7)

    print(load.summary("rotating"), f"| certificates served: {len(set(serials))}")
    assert len(set(serials)) == 5, "every rotation must be served without a restart"
    assert_all_answered(load)  # the only phase is "rotating"
    assert all(a.allowed for a in load.of("rotating"))
    assert_log_matches(load, server)


# --------------------------------------------------------------------------- Prometheus


def rollout_body() -> tuple[str, dict[str, Any]]:
    """A rollout (template change) of a new Deployment in namespace shop, which the SLO covers."""
    name = f"web-{uuid.uuid4().hex[:10]}"
    old = workload("Deployment", PINNED, name=name)
    new = copy.deepcopy(old)
    new["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] = "1.0.1"
    return name, admission_review(new, operation="UPDATE", old=old)


@pytest.mark.parametrize("unknown_mode", ["warn", "enforce"])
async def test_prometheus_down_follows_the_unknown_budget_mode_and_recovers(tmp_path: Path, unknown_mode: str) -> None:
    exporter = Exporter()
    (tmp_path / "prometheus").mkdir()
    try:
        prometheus = PrometheusServer(tmp_path / "prometheus", exporter.port)
    except BaseException:
        exporter.stop()
        raise
    policies = policies_allowing(tmp_path)
    data = yaml.safe_load((policies / "data.yaml").read_text())
    data["deployguard"]["config"]["rules"]["error_budget_unknown"]["mode"] = unknown_mode
    (policies / "data.yaml").write_text(yaml.safe_dump(data))
    slo = {**SLO["slos"][0], "selector": {"namespace": "shop"}}
    (tmp_path / "slos.yaml").write_text(yaml.safe_dump({"slos": [slo]}))
    server = served(tmp_path, tmp_path / "logs", {
        "policy": {"directory": str(policies)},
        "admission": {"deadline_seconds": 3},
        "budgets": {"prometheus_url": prometheus.url, "slo_file": str(tmp_path / "slos.yaml"),
                    "cache_ttl_seconds": 0, "query_timeout_seconds": 1},
    })  # fmt: skip
    try:
        with running(server):
            base, load = base_url(server), Load(phase="warming")
            async with under_load(load, server, seconds=120, concurrency=4, make_body=rollout_body):
                await until(lambda: any(a.allowed and not a.warnings for a in load.of("warming")[-4:]), 60,
                            "Prometheus has data and rollouts pass without a budget warning")  # fmt: skip
                load.enter("healthy")
                await asyncio.sleep(1.0)
                argv = prometheus.process.argv
                killed = time.monotonic()
                await asyncio.to_thread(prometheus.process.stop, signal.SIGKILL)
                load.enter("down")
                await asyncio.sleep(1.5)
                ready_while_down = await readyz(base, server.ca_file)
                load.enter("restarting")
                logs = tmp_path / "prometheus" / "logs"
                prometheus.process = await asyncio.to_thread(Process, "prometheus-again", argv, logs)
                await until(lambda: any(a.allowed and not a.warnings for a in load.of("restarting")[-4:]), 60,
                            "rollouts pass without a budget warning again")  # fmt: skip
                load.enter("recovered")
                await asyncio.sleep(1.0)
            metrics = await scrape(base, server.ca_file)
    finally:
        prometheus.stop()
        exporter.stop()

    for phase in ("warming", "healthy", "down", "restarting", "recovered"):
        print(unknown_mode, load.summary(phase))
    assert_all_answered(load)
    healthy = [a for a in load.of("healthy") if a.started + a.seconds < killed]  # done before the kill
    for answers in (healthy, load.of("recovered")):
        assert answers and all(a.allowed and not a.warnings for a in answers), [
            (a.warnings, a.message) for a in answers if not a.allowed or a.warnings
        ][:3]
    down = load.settled("down")
    assert down
    if unknown_mode == "warn":  # the default: deploys go on, kubectl says why the budget was not checked
        assert all(a.allowed for a in down)
        assert all(any("error_budget_unknown" in w and "web-availability" in w for w in a.warnings) for a in down)
    else:  # enforce: no budget, no rollout
        assert not any(a.allowed for a in down)
        assert all("error_budget_unknown" in a.message and "web-availability" in a.message for a in down)
    # Prometheus is a fact source, not a dependency of readiness.
    assert ready_while_down[0] == 200, ready_while_down
    assert_log_matches(load, server)
    # Every failed query counted in the served process's /metrics; with cache_ttl_seconds 0 no budget is a hit.
    assert total(metrics, "deployguard_upstream_errors_total", upstream="prometheus") > 0
    assert total(metrics, "deployguard_cache_requests_total", cache="budget", result="miss") > 0
    assert total(metrics, "deployguard_cache_requests_total", cache="budget", result="hit") == 0
