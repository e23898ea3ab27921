"""Async client for the few Twilio REST calls voxline makes (httpx, bounded retries).

Idempotent updates (hang up, redirect to <Dial>) are retried on 408/429/5xx and
connection errors. Creating a call is retried only when Twilio cannot have acted
(429, or a connection that never opened) -- a retried 5xx could ring someone twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from voxline.errors import ProviderError

from .config import redact_number
from .twiml import dial_twiml

log = logging.getLogger("voxline.twilio")


@dataclass(frozen=True)
class RetryOptions:
    attempts: int = 3
    base_delay_secs: float = 0.2
    max_delay_secs: float = 2.0
    timeout_secs: float = 10.0

    def delay(self, attempt: int) -> float:
        backoff = min(self.max_delay_secs, self.base_delay_secs * (2**attempt))
        return backoff * (0.5 + random.random() / 2)  # jitter avoids synchronized retries


@dataclass(frozen=True)
class MachineDetection:
    """Twilio answering-machine detection options for outbound calls."""

    mode: str = "DetectMessageEnd"  # or "Enable"
    async_amd: bool = True
    timeout_secs: int = 30


DEFAULT_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")


class TwilioRestClient:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = "https://api.twilio.com",
        retry: RetryOptions = RetryOptions(),
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._account = account_sid
        self._retry = retry
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=(account_sid, auth_token),
            timeout=retry.timeout_secs,
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    def _calls_path(self, call_sid: str | None = None) -> str:
        base = f"/2010-04-01/Accounts/{self._account}/Calls"
        return f"{base}/{call_sid}.json" if call_sid else f"{base}.json"

    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        status_callback: str,
        url: str | None = None,
        twiml: str | None = None,
        status_events: Sequence[str] = DEFAULT_STATUS_EVENTS,
        machine_detection: MachineDetection | None = None,
    ) -> str:
        """Place an outbound call; Twilio fetches ``url`` (or runs ``twiml``) once answered."""
        if (url is None) == (twiml is None):
            raise ValueError("create_call takes exactly one of url and twiml")
        data: list[tuple[str, str]] = [
            ("To", to),
            ("From", from_),
            ("Url", url) if url is not None else ("Twiml", twiml or ""),
            ("Method", "POST"),
            ("StatusCallback", status_callback),
            ("StatusCallbackMethod", "POST"),
        ]
        data += [("StatusCallbackEvent", event) for event in status_events]
        if machine_detection:
            data += [
                ("MachineDetection", machine_detection.mode),
                ("MachineDetectionTimeout", str(machine_detection.timeout_secs)),
            ]
            if machine_detection.async_amd:
                data += [
                    ("AsyncAmd", "true"),
                    ("AsyncAmdStatusCallback", status_callback),
                    ("AsyncAmdStatusCallbackMethod", "POST"),
                ]
        body = await self._post(self._calls_path(), data, label="create", idempotent=False)
        sid = body.get("sid")
        if not isinstance(sid, str):
            raise ProviderError("Twilio create call: response has no sid")
        log.info("%s outbound call created to %s", sid, redact_number(to))
        return sid

    async def hang_up(self, call_sid: str) -> None:
        """End a live call. A call that already ended (404/20404) counts as done."""
        try:
            await self._post(self._calls_path(call_sid), [("Status", "completed")], label="hangup")
        except ProviderError as e:
            if getattr(e, "status", None) == 404:
                log.info("%s hang-up: call already ended", call_sid)
                return
            raise

    async def update_twiml(self, call_sid: str, twiml: str) -> None:
        await self._post(self._calls_path(call_sid), [("Twiml", twiml)], label="update")

    async def transfer(self, call_sid: str, target: str, *, caller_id: str | None = None) -> None:
        """Move the live call to a number or SIP address; our stream ends as Twilio redirects."""
        await self.update_twiml(call_sid, dial_twiml(target, caller_id=caller_id))

    async def _post(
        self, path: str, data: Sequence[tuple[str, str]], *, label: str, idempotent: bool = True
    ) -> Mapping[str, object]:
        last: ProviderError | None = None
        for attempt in range(self._retry.attempts):
            if attempt:
                await asyncio.sleep(self._retry.delay(attempt - 1))
            try:
                response = await self._client.post(path, data=_form(data))
            except httpx.ConnectError as e:
                last = ProviderError(f"Twilio {label}: cannot connect: {e}", retryable=True)
                continue  # nothing reached Twilio: safe to retry even a create
            except httpx.TransportError as e:
                last = ProviderError(f"Twilio {label}: {type(e).__name__}: {e}", retryable=True)
                if idempotent:
                    continue
                raise last from e
            if response.status_code < 300:
                try:
                    body = response.json()
                except ValueError:
                    body = {}
                return body if isinstance(body, dict) else {}
            last = _status_error(label, response)
            retry_ok = last.retryable and (idempotent or response.status_code == 429)
            log.warning("Twilio %s HTTP %s (attempt %d)", label, response.status_code, attempt + 1)
            if not retry_ok:
                raise last
        assert last is not None
        raise last


def _form(data: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """httpx wants repeated form fields (StatusCallbackEvent) as a dict of lists."""
    form: dict[str, list[str]] = {}
    for key, value in data:
        form.setdefault(key, []).append(value)
    return form


def _status_error(label: str, response: httpx.Response) -> ProviderError:
    try:
        body = response.json()
        detail = f"{body.get('code', '')} {body.get('message', '')}".strip()
    except ValueError:
        detail = response.text[:200]
    error = ProviderError.from_status(response.status_code, f"Twilio {label}: {detail}")
    error.status = response.status_code  # type: ignore[attr-defined]
    return error
