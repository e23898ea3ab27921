"""Webhook tools: ``handler: "http:POST https://crm.example.com/hooks/lead"``.

The LLM's arguments (checked against the tool's ``parameters`` JSON schema) are the
JSON body (the query string for GET). With ``http.secret_env`` set, the request is
signed: ``X-Voxline-Signature: t=UNIX,v1=HEX`` where HEX is HMAC-SHA256 of
``"{t}.{body}"`` under the secret, so the receiver can check who sent it and when.
408, 429, 5xx and connection errors are retried ``http.retries`` times (bounded, with
a short backoff) within the tool's ``timeout_secs``; other answers are final. The
result is the response's JSON (or its text).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from typing import Any

import httpx
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema

from voxline.errors import MissingSecretError, ToolError
from voxline.integrations.tools.settings import ToolConfig
from voxline.spec import ToolSpec

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
BACKOFF_SECS = 0.2


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, body: bytes, header: str, *, tolerance_secs: float = 300.0) -> bool:
    """What a receiver runs: the signature matches and is recent."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - t) > tolerance_secs:
        return False
    return hmac.compare_digest(sign(secret, body, t), header)


class HttpTool:
    """A webhook as a tool, with the interface of loader.Tool."""

    def __init__(self, spec: ToolSpec) -> None:
        method, _, url = spec.handler.removeprefix("http:").partition(" ")
        self.spec, self.method, self.url = spec, method, url
        self.parameters = spec.parameters or {"type": "object", "properties": {}}
        if spec.http.secret_env and not os.environ.get(spec.http.secret_env):
            raise MissingSecretError(f"{spec.http.secret_env} is not set (the signing key of tool {spec.name})")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def description(self) -> str:
        return self.spec.description

    def json_schema(self) -> dict[str, Any]:
        return dict(self.parameters)

    def function_schema(self) -> FunctionSchema:
        return FunctionSchema(name=self.name, description=self.description,
                              properties=self.parameters.get("properties", {}),
                              required=self.parameters.get("required", []))

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        import jsonschema

        try:
            jsonschema.validate(arguments, self.parameters)
        except jsonschema.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "arguments"
            raise ToolError(f"invalid arguments for {self.name}: {where}: {e.message}") from None
        return arguments

    async def call(self, arguments: dict[str, Any], config: ToolConfig | None = None) -> Any:
        arguments = self.validate(arguments)
        try:
            return await asyncio.wait_for(self._send(arguments, config), self.spec.timeout_secs)
        except TimeoutError:
            raise ToolError(f"{self.name} timed out after {self.spec.timeout_secs:g}s", retryable=True) from None

    async def _send(self, arguments: dict[str, Any], config: ToolConfig | None) -> Any:
        options = self.spec.http
        body = b"" if self.method == "GET" else json.dumps(arguments, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "user-agent": "voxline", **options.headers}
        secrets = dict(config.secrets) if config else {}
        env_secret = os.environ[options.secret_env] if options.secret_env else None
        signing = secrets.pop("signing_secret", None) or env_secret
        if config is not None:  # the tenant's stored headers; secrets last (they win)
            headers.update({str(k): str(v) for k, v in dict(config.settings.get("headers") or {}).items()})
            headers.update(secrets)
        last: ToolError | None = None
        async with httpx.AsyncClient(timeout=self.spec.timeout_secs, follow_redirects=False) as client:
            for attempt in range(options.retries + 1):
                if attempt:
                    await asyncio.sleep(BACKOFF_SECS * 2 ** (attempt - 1))
                if signing:  # signed per attempt: a retry carries a fresh timestamp
                    headers[options.signature_header] = sign(signing, body)
                try:
                    response = await client.request(
                        self.method, self.url, content=body or None, headers=headers,
                        params={k: str(v) for k, v in arguments.items()} if self.method == "GET" else None)
                except httpx.TransportError as e:
                    last = ToolError(f"{self.name}: {type(e).__name__}", retryable=True)
                    continue
                if response.status_code in RETRY_STATUSES:
                    last = ToolError(f"{self.name}: HTTP {response.status_code}", retryable=True)
                    continue
                if response.status_code >= 400:
                    raise ToolError(f"{self.name}: HTTP {response.status_code}")
                try:
                    return response.json()
                except ValueError:
                    return response.text[:2000]
        assert last is not None
        raise last
