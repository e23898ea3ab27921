"""What every vendor family's factories share: secrets, the fields a spec set, defaults,
and the small helpers their probes use."""

from __future__ import annotations

import contextlib
import io
import os
import ssl
import wave
from collections.abc import AsyncIterator
from functools import cache
from typing import Any

from voxline.errors import MissingSecretError, translate
from voxline.spec import ProviderBlock


def secret(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSecretError(f"environment variable {name} is not set")
    return value


def given(block: ProviderBlock, *names: str) -> dict[str, Any]:
    """The fields among ``names`` that the spec itself set (not pydantic defaults, not
    None), so each service keeps its own defaults for the rest: a spec default such
    as ``temperature: 0.2`` is a choice for the local model, not for every vendor."""
    return {n: getattr(block, n) for n in names
            if n in block.model_fields_set and getattr(block, n) is not None}


@cache
def tls_context() -> ssl.SSLContext:
    """One TLS context (the CA bundle, loaded once) for every call's HTTP clients:
    building one costs ~25 ms of CPU, which a per-call constructor spends on the event loop."""
    import httpx

    return httpx.create_ssl_context()


@cache
def closing_client(service_cls: type) -> type:
    """``service_cls`` whose cleanup closes its vendor HTTP client.

    Pipecat leaves the ``AsyncOpenAI`` / ``AsyncAnthropic`` client it builds to the garbage
    collector, whose ``__del__`` schedules ``aclose()`` on whatever loop runs then: the
    call's connection pool outlives the call, and one collected while a loop shuts down
    fails with "Event loop is closed". The class keeps its name (logs and usage name it).
    """
    class Closing(service_cls):  # type: ignore[misc, valid-type]
        async def cleanup(self) -> None:
            await super().cleanup()
            client = getattr(self, "_client", None)
            if client is not None:
                with contextlib.suppress(Exception):  # closing is best effort; the call is over
                    await client.close()

    Closing.__name__ = Closing.__qualname__ = service_cls.__name__
    return Closing


@cache
def _defaults(service_cls: type) -> Any:
    # Pipecat's defaults live in each constructor; a throwaway instance is the only
    # faithful place to read them. It opens no connection.
    return service_cls(api_key="unused")._settings


def default_value(service_cls: type, field: str = "model") -> Any:
    """What Pipecat uses for ``field`` when the spec leaves it unset (None if unreadable)."""
    try:
        return getattr(_defaults(service_cls), field, None)
    except Exception:  # a default we cannot read is still the service's default
        return None


def default_of(service_cls: type, field: str = "model") -> str:
    """``service default (<what pipecat will use>)``, as ``voxline check`` prints it."""
    value = default_value(service_cls, field)
    return f"service default ({value})" if isinstance(value, str) and value else "service default"


def describe(block: ProviderBlock, service_cls: type, field: str = "model") -> str:
    value = getattr(block, field, None)
    return str(value) if value else default_of(service_cls, field)


def chosen(block: ProviderBlock, service_cls: type, field: str = "model") -> Any:
    """The value a service built from ``block`` uses: the spec's, else the service's default."""
    return getattr(block, field, None) or default_value(service_cls, field)


def without_sdk_retries(service: Any) -> Any:
    """In a failover chain the chain retries, bounded: the vendor SDK must not retry
    on its own (the OpenAI and Anthropic SDKs retry 5xx/429 twice by default, which
    hides the failure and multiplies the wait)."""
    client = getattr(service, "_client", None)
    with_options = getattr(client, "with_options", None)
    if callable(with_options):
        try:
            service._client = with_options(max_retries=0)
        except TypeError:
            pass
    return service


def ws_url(url: str) -> str:
    """``http(s)://`` → ``ws(s)://``; a websocket URL stays as it is."""
    if url.startswith("https://"):
        return "wss://" + url[len("https://"):]
    if url.startswith("http://"):
        return "ws://" + url[len("http://"):]
    return url


def http_url(url: str) -> str:
    if url.startswith("wss://"):
        return "https://" + url[len("wss://"):]
    if url.startswith("ws://"):
        return "http://" + url[len("ws://"):]
    return url


def silence_wav(secs: float = 0.3, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(int(secs * rate) * 2))
    return buf.getvalue()


async def drain(chunks: AsyncIterator[Any], provider: str) -> None:
    """Read a probe's answer to the end; any failure becomes a ProviderError."""
    try:
        async for _ in chunks:
            pass
    except Exception as e:
        raise translate(e, provider=provider) from e
