"""``X-Forwarded-For/-Proto/-Host`` from trusted reverse proxies only (``EID_PROXY__TRUSTED``).

Client address and scheme are uvicorn's ``ProxyHeadersMiddleware`` (it walks
``X-Forwarded-For`` from the right and stops at the first address that is not a trusted
proxy, so a client cannot forge its way past the limits). It ignores
``X-Forwarded-Host``; this adds it, from the proxy next to us only. Wired in the app
rather than by ``uvicorn --proxy-headers`` so the rate limits and HSTS see the same
client whatever server runs the app.
"""

from __future__ import annotations

import ipaddress
import re

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

_HOST = re.compile(rb"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


class TrustedProxyMiddleware:
    def __init__(self, app: ASGIApp, *, trusted: list[str]) -> None:
        self.networks = [ipaddress.ip_network(item, strict=False) for item in trusted]
        self.app = ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]

    def _trusted(self, host: str | None) -> bool:
        if not host:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._trusted((scope.get("client") or (None,))[0]):
            forwarded = [v for k, v in scope["headers"] if k == b"x-forwarded-host"]
            # The proxy next to us appends (or sets) the last value; earlier ones came
            # from further out, possibly from the client itself.
            host = forwarded[-1].split(b",")[-1].strip() if forwarded else b""
            if host and _HOST.fullmatch(host):
                headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
                scope = {**scope, "headers": [*headers, (b"host", host)]}
        await self.app(scope, receive, send)  # type: ignore[arg-type]
