"""Twilio webhook signatures (X-Twilio-Signature).

Twilio's documented algorithm: take the full URL Twilio requested, append each POST
parameter name followed by its value, names sorted, HMAC-SHA1 it with the account's
auth token and base64 the digest. The hard part in production is "the URL Twilio
requested": behind a TLS-terminating proxy our server sees http://internal:8080/...,
so we rebuild it from a configured public base URL or X-Forwarded-Proto/Host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from starlette.requests import Request

from .config import TwilioConfig
from .messages import valid_call_sid

log = logging.getLogger("voxline.twilio")

Params = Mapping[str, str | Sequence[str]]


def compute_signature(auth_token: str, url: str, params: Params) -> str:
    """Base64 HMAC-SHA1 over URL + sorted name/value pairs (multi-values sorted too)."""
    payload = url
    for name in sorted(params):
        raw = params[name]
        values = [raw] if isinstance(raw, str) else list(raw)
        for value in sorted(set(values)):
            payload += name + value
    digest = hmac.new(auth_token.encode(), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """Twilio signs with or without the default port depending on the product; try both."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80, "wss": 443, "ws": 80}.get(parts.scheme)
    host = parts.hostname or ""
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    ported = urlunsplit(
        (parts.scheme, f"{host}:{parts.port or default}", parts.path, parts.query, "")
    )
    return [url, bare, ported]


def is_valid_signature(auth_token: str, url: str, params: Params, signature: str | None) -> bool:
    if not signature:
        return False
    return any(
        hmac.compare_digest(compute_signature(auth_token, candidate, params), signature)
        for candidate in _url_variants(url)
    )


def public_url(request: Request, config: TwilioConfig) -> str:
    """The URL as Twilio saw it: configured base, else forwarded headers, else the socket."""
    path_qs = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if config.public_base_url:
        return config.public_base_url.rstrip("/") + path_qs
    scheme, host = request.url.scheme, request.headers.get("host", request.url.netloc)
    if config.trust_forwarded_headers:
        # Proxies may append a chain ("https, http"); the first hop is what Twilio used.
        fwd_proto = request.headers.get("x-forwarded-proto")
        fwd_host = request.headers.get("x-forwarded-host")
        if fwd_proto:
            scheme = fwd_proto.split(",")[0].strip()
        if fwd_host:
            host = fwd_host.split(",")[0].strip()
    if scheme == "ws":
        scheme = "http"
    elif scheme == "wss":
        scheme = "https"
    return f"{scheme}://{host}{path_qs}"


def public_base(request: Request, config: TwilioConfig) -> str:
    """scheme://host part of :func:`public_url`, used to build our own callback URLs."""
    parts = urlsplit(public_url(request, config))
    return f"{parts.scheme}://{parts.netloc}"


async def form_params(request: Request) -> dict[str, list[str]]:
    """Parse Twilio's form-urlencoded body ourselves (no python-multipart dependency)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        params.setdefault(key, []).append(value)
    return params


async def verified_form(request: Request, config: TwilioConfig) -> dict[str, str] | None:
    """Return the POST params if the signature checks out, else log and return None."""
    params = await form_params(request)
    url = public_url(request, config)
    signature = request.headers.get("x-twilio-signature")
    if not is_valid_signature(config.auth_token, url, params, signature):
        call_sid = params.get("CallSid", ["-"])[0]
        call_sid = call_sid if valid_call_sid(call_sid) else "-"  # unverified: never log it raw
        log.warning(
            "%s rejected webhook %s: %s X-Twilio-Signature",
            call_sid,
            request.url.path,
            "missing" if not signature else "invalid",
        )
        return None
    return {key: values[-1] for key, values in params.items()}
