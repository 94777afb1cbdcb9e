"""Rate limits per client address: a token bucket per (rule, address), in process memory.

Each instance (and each worker process) keeps its own buckets, so behind a load balancer
spreading over N processes a client gets up to N times the configured rate: set the
limits per process with that in mind. The client address is the one the trusted proxies
forwarded (``proxy.py`` runs first), else the peer's.

Over the limit a request gets 429 with ``Retry-After``: an RFC 9457 problem on the API,
the OAuth error format (``temporarily_unavailable``) on the OAuth endpoints, and the
error page on the browser-facing authorization endpoint.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Message, Scope

from .observability import RATE_LIMITED
from .problems import MEDIA_TYPE, PROBLEM_BASE
from .settings import RateLimitSettings, RateRule


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The outcome of taking a token."""

    allowed: bool
    """Whether the request may go on."""
    retry_after: int
    """Whole seconds until a token is back (0 when allowed)."""


class TokenBuckets:
    """Buckets of one rule, one per client, the least recently seen dropped past ``max_clients``."""

    def __init__(
        self, rule: RateRule, *, max_clients: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rule.per_minute / 60.0
        self.burst = float(rule.burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> Decision:
        now = self.clock()
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if allowed:
            return Decision(allowed=True, retry_after=0)
        return Decision(allowed=False, retry_after=max(1, math.ceil((1.0 - tokens) / self.rate)))


# (rule, methods, path pattern). Paths are matched raw, before routing.
RULES: tuple[tuple[str, frozenset[str], re.Pattern[str]], ...] = (
    ("login", frozenset({"POST"}), re.compile(r"/api/v1/auth/app|/api/v1/auth/web-eid/login|/oauth/par")),
    ("login", frozenset({"GET"}), re.compile(r"/api/v1/auth/web-eid/challenge")),
    ("login", frozenset({"GET", "POST"}), re.compile(r"/oauth/authorize")),
    ("polling", frozenset({"GET"}), re.compile(r"/api/v1/auth/app/[^/]+|/api/v1/app/requests(/[^/]+)?")),
    ("polling", frozenset({"GET"}), re.compile(r"/api/v1/signing/[^/]+")),
    ("enrolment", frozenset({"POST"}), re.compile(r"/api/v1/enrolment(/[^/]+/complete)?")),
    ("admin", frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"}), re.compile(r"/api/v1/admin/.*")),
)


def rule_for(method: str, path: str) -> str | None:
    for name, methods, pattern in RULES:
        if method in methods and pattern.fullmatch(path):
            return name
    return None


def _refusal(scope: Scope, retry_after: int) -> tuple[int, bytes, bytes]:
    """Status, content type and body of a 429 in the format the endpoint speaks."""
    path = scope["path"]
    detail = f"too many requests from this address; try again in {retry_after} seconds"
    if path == "/oauth/authorize":
        from starlette.requests import Request

        from .pages import render

        context = {"title": "Too many attempts", "detail": detail, "advice": None}
        page = render("error.html", context, status=429, request=Request(scope))
        return 429, b"text/html; charset=utf-8", bytes(page.body)
    if path.startswith("/oauth/"):
        body = {"error": "temporarily_unavailable", "error_description": detail}
        return 429, b"application/json", json.dumps(body).encode()
    problem = {"type": PROBLEM_BASE + "rate-limited", "title": "Too many requests", "status": 429}
    return 429, MEDIA_TYPE.encode(), json.dumps(problem | {"detail": detail}).encode()


def client_key(address: str) -> str:
    """The bucket key of a client address: an IPv6 client usually holds a whole /64, so
    the /64 is one client (otherwise it could take a fresh address per request)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class RateLimiter:
    """The buckets of one app. ``observability.EdgeMiddleware`` asks it about each request
    before the route runs (before any body is read), so a refusal still carries the
    security headers, the request id and its access log line."""

    def __init__(self, settings: RateLimitSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.buckets = {
            name: TokenBuckets(getattr(settings, name), max_clients=settings.max_clients, clock=clock)
            for name in {rule for rule, _, _ in RULES}
        }

    def refusal(self, scope: Scope) -> tuple[Message, Message] | None:
        """Takes a token for the request of ``scope``; the 429 answer when none is left."""
        if (rule := rule_for(scope["method"], scope["path"])) is None:
            return None
        decision = self.buckets[rule].take(client_key((scope.get("client") or ("unknown",))[0]))
        if decision.allowed:
            return None
        RATE_LIMITED.labels(rule).inc()
        status, content_type, body = _refusal(scope, decision.retry_after)
        start = {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(decision.retry_after).encode()),
            ],
        }
        return start, {"type": "http.response.body", "body": body}
