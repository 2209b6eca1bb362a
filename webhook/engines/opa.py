"""The OPA engine: a real OPA server (the chart's sidecar) over its REST API.

deployguard is the source of truth for policies: each revision is pushed to OPA
(modules under ``deployguard/…`` ids, data at the root, the revision at
``data.deployguard_meta.revision``). If OPA restarts and forgets them, the first
evaluation notices the missing revision, pushes again and retries once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from opa_client import AsyncOpaClient
from opa_client.errors import PolicyNotFoundError

from webhook.engines import DECISION_PATH, PROBE_INPUT
from webhook.errors import EngineError, PolicyLoadError
from webhook.policy_bundle import PolicyBundle

POLICY_ID_PREFIX = "deployguard/"
META_KEY = "deployguard_meta"


class _Client(AsyncOpaClient):  # type: ignore[misc]
    """The library's async client, plus an evaluation call that keeps OPA's error text."""

    async def evaluate(self, path: str, policy_input: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.root_url}/data/{path}?strict-builtin-errors=true"
        async with self._request("POST", url, json={"input": policy_input}) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                message = body.get("message", "") if isinstance(body, dict) else str(body)
                errors = body.get("errors", []) if isinstance(body, dict) else []
                detail = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
                raise EngineError(f"OPA answered HTTP {response.status}: {message} {detail}".strip())
            if not isinstance(body, dict):
                raise EngineError("OPA answered with something other than a JSON object")
            return body


def _describe(exc: BaseException) -> str:
    """OPA's own words: the message plus each compiler error with its file and line."""
    message = str(getattr(exc, "message", None) or exc or type(exc).__name__)
    details = []
    for error in getattr(exc, "errors", None) or []:
        if isinstance(error, dict):
            where = error.get("location") or {}
            place = f"{where.get('file', '?')}:{where.get('row', '?')}: " if where else ""
            details.append(f"{place}{error.get('code', '')}: {error.get('message', '')}")
    return message + ("; " + "; ".join(details) if details else "")


class OpaEngine:
    """Evaluates ``data.deployguard.decision`` on an OPA server."""

    name = "opa"

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"OPA URL {url!r} must look like http://host:port")
        self._url = url
        self._client = _Client(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 8181),
            ssl=parts.scheme == "https",
            retries=0,
            timeout=timeout,
        )
        self._session_ready = False
        self._bundle: PolicyBundle | None = None
        self._push_lock = asyncio.Lock()

    @property
    def revision(self) -> str:
        return self._bundle.revision if self._bundle else ""

    async def _session(self) -> _Client:
        if not self._session_ready:
            await self._client._init_session()
            self._session_ready = True
        return self._client

    async def _push(self, bundle: PolicyBundle) -> None:
        client = await self._session()
        data = dict(bundle.data)
        data[META_KEY] = {"revision": bundle.revision}
        await client.update_or_create_data(data, "")
        wanted = {POLICY_ID_PREFIX + path for path, _ in bundle.modules}
        # OPA compiles every PUT against the modules it holds, so a module that uses a
        # function another module adds only compiles after that one: push in passes
        # until every module is accepted or a pass makes no progress (a real error).
        pending = list(bundle.modules)
        while pending:
            failed: list[tuple[str, str]] = []
            last_error: Exception | None = None
            for path, source in pending:
                try:
                    await client.update_policy_from_string(source, POLICY_ID_PREFIX + path, rego_compat=False)
                except (TimeoutError, aiohttp.ClientError, OSError):
                    raise
                except Exception as exc:  # OPA's compile error: maybe only an ordering problem
                    failed.append((path, source))
                    last_error = exc
            if len(failed) == len(pending) and last_error is not None:
                raise last_error
            pending = failed
        for policy_id in await client.get_policies_list():
            if isinstance(policy_id, str) and policy_id.startswith(POLICY_ID_PREFIX) and policy_id not in wanted:
                await client.delete_policy(policy_id)

    async def load(self, bundle: PolicyBundle) -> None:
        async with self._push_lock:
            try:
                await self._push(bundle)
                probe = await (await self._session()).evaluate("/".join(DECISION_PATH), PROBE_INPUT)
                if "result" not in probe:
                    raise PolicyLoadError("data.deployguard.decision is undefined on OPA for a minimal input")
            except Exception as exc:  # anything OPA or the network says: keep the old revision
                message = _describe(exc)
                if self._bundle is not None:  # put the previous revision back
                    with contextlib.suppress(Exception):
                        await self._push(self._bundle)
                if isinstance(exc, PolicyLoadError):
                    raise
                raise PolicyLoadError(f"OPA at {self._url} rejected revision {bundle.revision}: {message}") from None
            self._bundle = bundle

    async def evaluate(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        if self._bundle is None:
            raise EngineError("no policy revision is loaded")
        path = "/".join(DECISION_PATH)
        try:
            client = await self._session()
            body = await client.evaluate(path, policy_input)
            if "result" not in body:
                # OPA restarted and lost our push, or the decision is undefined: push once and retry.
                async with self._push_lock:
                    await self._push(self._bundle)
                body = await client.evaluate(path, policy_input)
        except EngineError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise EngineError(f"OPA at {self._url} is unreachable: {exc or type(exc).__name__}") from None
        except Exception as exc:  # the library's own errors carry .message
            raise EngineError(f"OPA at {self._url} failed: {getattr(exc, 'message', exc)}") from None
        result = body.get("result")
        if not isinstance(result, dict):
            raise EngineError("data.deployguard.decision is undefined on OPA for this input")
        return result

    async def ready(self) -> tuple[bool, str]:
        if self._bundle is None:
            return False, "no policy revision pushed to OPA yet"
        try:
            client = await self._session()
            held = (await client.get_data(f"{META_KEY}/revision")).get("result")
        except PolicyNotFoundError:
            held = None
        except Exception as exc:
            return False, f"OPA at {self._url} is not answering: {getattr(exc, 'message', exc) or exc!r}"
        if held != self._bundle.revision:
            try:  # OPA restarted: heal it now rather than on the next request
                async with self._push_lock:
                    await self._push(self._bundle)
            except Exception as exc:
                return False, f"OPA lost revision {self._bundle.revision} and re-pushing failed: {exc}"
        return True, ""

    async def close(self) -> None:
        if self._session_ready:
            await self._client.close_connection()
            self._session_ready = False
