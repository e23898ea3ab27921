"""A SIP account at a trunk or PBX, from ``sip:USER:PASSWORD@HOST[:PORT]``.

``VOXLINE_SIP_REGISTER`` names the account we register with; ``VOXLINE_SIP_TRUNK``
the one outbound calls go through (default: the registered one). A trunk that
trusts our address needs no credentials: ``sip:HOST[:PORT]``. ``;transport=tcp`` or
``;transport=tls`` (or a ``sips:`` URI) reaches it over a connection we open. The
password never appears in a repr or a log line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiosipua.auth import SipDigestAuth

from voxline.errors import VoxlineError

_ACCOUNT = re.compile(r"^(?P<scheme>sips?):(?:(?P<user>[^:@;]+)(?::(?P<password>[^@;]*))?@)?"
                      r"(?P<host>\[[^\]]+\]|[^:;>@\[]+)(?::(?P<port>\d{1,5}))?"
                      r"(?:;transport=(?P<transport>udp|tcp|tls))?$", re.I)


@dataclass(frozen=True)
class SipAccount:
    user: str | None
    password: str | None = field(repr=False)
    host: str
    port: int = 5060
    transport: str = "UDP"  # or TCP, TLS

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.host}" if self.user else f"sip:{self.host}"

    @property
    def registrar_uri(self) -> str:
        return (f"sip:{self.host}" + (f":{self.port}" if self.port != 5060 else "")
                + (f";transport={self.transport.lower()}" if self.transport != "UDP" else ""))

    def uri(self, user: str) -> str:
        """``user`` (a number) at this account's host."""
        where = f"{self.host}" + (f":{self.port}" if self.port != 5060 else "")
        return f"sip:{user}@{where}" + (f";transport={self.transport.lower()}" if self.transport != "UDP" else "")

    def auth(self) -> SipDigestAuth | None:
        return SipDigestAuth(self.user, self.password) if self.user and self.password is not None else None


def parse_account(text: str, env: str, *, credentials: bool = False) -> SipAccount:
    """Raises VoxlineError naming ``env`` when ``text`` is not an account (with a password
    when ``credentials``)."""
    m = _ACCOUNT.match(text.strip())
    shape = "sip:USER:PASSWORD@HOST[:PORT]" if credentials else "sip:[USER:PASSWORD@]HOST[:PORT]"
    if m is None or (credentials and (m["user"] is None or m["password"] is None)) or int(m["port"] or 5060) > 65535:
        raise VoxlineError(f"{env}: expected {shape}")
    transport = (m["transport"] or ("tls" if m["scheme"].lower() == "sips" else "udp")).upper()
    return SipAccount(unquote(m["user"]) if m["user"] else None,
                      unquote(m["password"]) if m["password"] is not None else None,
                      m["host"].strip("[]"), int(m["port"] or (5061 if transport == "TLS" else 5060)), transport)


def unreachable(advertised_host: str, *accounts: SipAccount | None) -> bool:
    """A loopback Contact/SDP address is useless to a registrar or trunk elsewhere."""
    remote = [a.host for a in accounts if a is not None]
    return advertised_host.startswith("127.") and any(not h.startswith(("127.", "localhost")) for h in remote)
