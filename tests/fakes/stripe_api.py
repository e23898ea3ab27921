"""A fake of Stripe's Billing Meter Events API on loopback, for the official ``stripe`` SDK.

Speaks the documented wire protocol of ``POST /v1/billing/meter_events``:

- form-encoded body: ``event_name``, ``payload[stripe_customer_id]``, ``payload[value]``
  (a whole number), ``identifier``, ``timestamp`` (Unix seconds, at most 35 days old and
  5 minutes ahead);
- ``Authorization: Bearer sk_...``; a wrong key gets 401;
- ``Idempotency-Key``: the same key with the same parameters replays the first accepted
  answer (``Idempotent-Replayed: true``), with other parameters gets 400 ``idempotency_error``;
- an ``identifier`` seen before (under another key) gets 400 "An event already exists
  with identifier ..." and ``Stripe-Should-Retry: false``, as Stripe answers;
- errors as ``{"error": {"type", "code", "message", "param"}}``, a ``Request-Id`` on
  every answer; ``fail_next(429, 500, ...)`` answers the next requests with those statuses.

``events`` holds the accepted events by identifier, so a test sees what would be billed.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer

_MAX_AGE_SECS = 35 * 86400
_MAX_AHEAD_SECS = 300


@dataclass
class MeterEvent:
    event_name: str
    customer: str
    value: int
    identifier: str
    timestamp: int


class FakeStripe(LoopbackServer):
    def __init__(self, api_key: str, *, meters: tuple[str, ...] = (), customers: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.api_key = api_key
        self.meters = set(meters)  # event names with an active meter
        self.customers = set(customers)
        self.events: dict[str, MeterEvent] = {}
        self._idempotent: dict[str, tuple[dict[str, str], int, dict[str, Any]]] = {}
        self._fail: list[int] = []
        self._ids = itertools.count(1)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/billing/meter_events", self._create)]

    def fail_next(self, *statuses: int) -> None:
        self._fail.extend(statuses)

    def expire_idempotency_keys(self) -> None:
        """What a day does: Stripe forgets idempotency keys after 24 hours."""
        self._idempotent.clear()

    def meter_posts(self) -> list[dict[str, str]]:
        """The form of every POST that reached the endpoint, in order (refused ones too)."""
        return [r.body for r in self.requests if r.path == "/v1/billing/meter_events"]

    # -- the endpoint ------------------------------------------------------------------
    async def _create(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        await self.record(request, form)
        if self._fail:
            return self._scripted_failure(self._fail.pop(0))
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            shown = request.headers.get("Authorization", "")[-4:]
            return _error(401, "invalid_request_error", None, f"Invalid API Key provided: sk_****{shown}")
        key = request.headers.get("Idempotency-Key")
        if key and key in self._idempotent:
            first_form, status, body = self._idempotent[key]
            if first_form != form:
                return _error(400, "idempotency_error", None,
                              "Keys for idempotent requests can only be used with the same parameters "
                              f"they were first used with. Try using a key other than '{key}' if you "
                              "meant to execute a different request.")
            return _answer(status, body, {"Idempotent-Replayed": "true"})
        status, body, headers = self._meter_event(form)
        if key and status == 200:  # Stripe saves no result for a request refused by validation
            self._idempotent[key] = (form, status, body)
        return _answer(status, body, headers)

    def _meter_event(self, form: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        for name in ("event_name", "payload[stripe_customer_id]", "payload[value]"):
            if not form.get(name):
                return _error_body(400, "invalid_request_error", "parameter_missing",
                                   f"Missing required param: {name}.", name)
        name, customer = form["event_name"], form["payload[stripe_customer_id]"]
        if self.meters and name not in self.meters:
            return _error_body(400, "invalid_request_error", None,
                               f"No active meter found for event_name '{name}'.", "event_name")
        if self.customers and customer not in self.customers:
            return _error_body(400, "invalid_request_error", "resource_missing",
                               f"No such customer: '{customer}'", "payload[stripe_customer_id]")
        if not re.fullmatch(r"-?[0-9]+", form["payload[value]"]):
            return _error_body(400, "invalid_request_error", None,
                               "The value in the payload must be a whole number.", "payload[value]")
        now = int(time.time())
        timestamp = int(form.get("timestamp") or now)
        if not now - _MAX_AGE_SECS <= timestamp <= now + _MAX_AHEAD_SECS:
            return _error_body(400, "invalid_request_error", None,
                               "Timestamp must be within the past 35 calendar days and no more than "
                               "5 minutes in the future.", "timestamp")
        identifier = form.get("identifier") or f"mev_{next(self._ids):016d}"
        if identifier in self.events:
            status, body, _ = _error_body(400, "invalid_request_error", None,
                                          f"An event already exists with identifier {identifier}.", "identifier")
            return status, body, {"Stripe-Should-Retry": "false"}
        self.events[identifier] = MeterEvent(name, customer, int(form["payload[value]"]), identifier, timestamp)
        return 200, {"object": "billing.meter_event", "created": now, "event_name": name,
                     "identifier": identifier, "livemode": False, "timestamp": timestamp,
                     "payload": {"stripe_customer_id": customer, "value": form["payload[value]"]}}, {}

    @staticmethod
    def _scripted_failure(status: int) -> web.Response:
        if status == 429:
            return _error(429, "invalid_request_error", "rate_limit",
                          "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.")
        if status >= 500:
            return _error(status, "api_error", None, "An unknown error occurred.")
        return _error(status, "invalid_request_error", None, f"Scripted failure ({status}).")


def _error_body(status: int, type_: str, code: str | None, message: str,
                param: str | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    error: dict[str, Any] = {"type": type_, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return status, {"error": error}, {}


def _error(status: int, type_: str, code: str | None, message: str) -> web.Response:
    status, body, headers = _error_body(status, type_, code, message)
    return _answer(status, body, headers)


_request_ids = itertools.count(1)


def _answer(status: int, body: dict[str, Any], headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        headers={"Request-Id": f"req_{next(_request_ids):014d}", **headers})
