"""OpenID Connect throughput against ``eid serve`` on loopback, beside bare FastAPI ceilings.

Measured in the same run (issue: "refresh-token grants per second, authorization-code
exchanges per second, and complete logins per second, each beside a bare FastAPI endpoint
measured in the same run"):

* **refresh-token grants**: ``POST /oauth/token`` ``grant_type=refresh_token`` with
  ``client_secret_basic``; each answer rotates the refresh token (single use), so before
  every wrk run the script inserts fresh grants (``OAuthToken`` rows, token values stored
  as SHA-256 like ``identity.oauth.tokens.store`` does) and wrk's Lua walks their refresh
  tokens in order. Ceiling: a bare POST with the same header and body sizes.
* **authorization-code exchanges**: ``grant_type=authorization_code`` with PKCE (S256)
  and ``client_secret_basic``: an ID token signed (RS256) each time. Codes live 60 s and
  are single use, so they are inserted (``AuthorizationCode`` rows with the fields
  ``identity.oauth.grants.save_code`` sets) right before every run. Same kind of ceiling.
* **complete logins**: a Python driver (asyncio + ``_http1``, a lean HTTP/1.1 keep-alive
  client: httpx cost the driver ~15 ms of CPU per login; N concurrent browsers, each with
  its own cookie jar, its own connection and its own enrolled citizen app, whose phone has
  a connection of its own) does, for a fixed count of logins:
  ``GET /oauth/authorize`` → ``GET /login`` → ``POST /api/v1/auth/app`` → the app lists its
  pending requests (device-signed token) and answers (signed approval) → the browser polls
  ``GET /api/v1/auth/app/{id}`` → ``GET /oauth/authorize/resume`` → ``POST /oauth/token``,
  checking every answer and the ID token (signature with the JWKS, ``aud``, ``iss``,
  ``nonce``, ``sub``). Ceiling: the same driver doing the same 8 requests (same methods,
  headers and bodies, same client-side signing) against the bare app. The generator runs
  on the same 2 cores as the server; its CPU use is reported beside the rate.
* **token endpoint p99 at half the peak rate**: wrk with 8 connections, each pausing after
  every answer (wrk's ``delay()``), the pause tuned (at most 3 runs) so the rate is about
  half the peak measured above; wrk's latency distribution of that run. wrk is closed
  loop: this is the latency at that offered rate, not a constant-rate (wrk2) measurement.

Goals (the issue, absolute on this 2-core machine): refresh grants ≥ 1,200/s, complete
logins ≥ 150/s, token endpoint p99 < 50 ms at half the peak rate. The table shows them
with PASS/FAIL and, beside every rate, its ratio to the ceiling of the same run.

Checks: before and after, a refresh gives new tokens (userinfo accepts the new access
token, the new refresh token works once more, the old one is refused ``invalid_grant``),
and a code gives a valid ID token and is refused the second time. After every wrk run the
database must show exactly what wrk counted: no grant revoked (a reuse), one new token
per refresh or code used, and between wrk's count and the number sent.

    .venv/bin/python bench/bench_oidc.py [--duration 10] [--connections 16] [--rounds 1]
        [--logins 400] [--login-concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import hashlib
import json
import os
import resource
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import _citizen_app as ca
import _harness as h
import httpx
import jwt
from _http1 import Http1Client, Http1Error
from sqlalchemy import Engine, func, insert, select

REFRESH_GOAL = 1200.0
LOGIN_GOAL = 150.0
P99_GOAL_MS = 50.0
FORM = "application/x-www-form-urlencoded"
REDIRECT = "https://rp.example/cb"
SCOPE = "openid profile"
TOKEN_PATH = "/oauth/token"
MARGIN = 2.0
CEILING_LINES = 2000
LATENCY_CONNECTIONS = 8
LATENCY_TRIES = 3
LATENCY_TOLERANCE = 0.15
REQUESTS_PER_LOGIN = 8


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class RelyingParty:
    client_id: str
    client_secret: str

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()


def register_client(service: h.Service) -> RelyingParty:
    out = service.run_eid(
        "client",
        "add",
        "--name",
        "Benchmark relying party",
        "--redirect-uri",
        REDIRECT,
        "--first-party",
        "--scope",
        "openid",
        "--scope",
        "profile",
        "--scope",
        "offline_access",
        "--json",
    )
    created = json.loads(out)
    return RelyingParty(created["client_id"], created["client_secret"])


# --------------------------------------------------------------------------- single-use grants


@dataclass
class GrantLoad:
    """Fresh refresh tokens or codes, one batch per wrk run, checked in the database after it."""

    kind: str  # "refresh" or "code"
    env: h.Environment
    rp: RelyingParty
    citizen: ca.CitizenApp
    engine: Engine
    lines_file: Path
    rate: float
    batches: int = 0
    tag: str = ""
    first_id: int = 0
    count: int = 0
    in_flight: list[int] = field(default_factory=list)

    def rows(self, count: int, tag: str) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
        from identity import _secrets
        from identity.oauth.grants import CODE_LIFETIME, REFRESH_LIFETIME
        from identity.oauth.tokens import ACCESS_TOKEN_LIFETIME
        from keys.models import utcnow

        now = utcnow()
        rows: list[dict[str, Any]] = []
        lines: list[tuple[str, str, str]] = []
        for _ in range(count):
            grant_id = tag + secrets.token_hex(10)
            if self.kind == "refresh":
                refresh = secrets.token_urlsafe(32)
                rows.append(
                    {
                        "client_id": self.rp.client_id,
                        "citizen_id": self.citizen.citizen_id,
                        "grant_id": grant_id,
                        "scope": SCOPE,
                        "access_token_hash": _secrets.digest(secrets.token_urlsafe(32)),
                        "refresh_token_hash": _secrets.digest(refresh),
                        "issued_at": now,
                        "access_expires_at": now + ACCESS_TOKEN_LIFETIME,
                        "refresh_expires_at": now + REFRESH_LIFETIME,
                    }
                )
                body = urlencode({"grant_type": "refresh_token", "refresh_token": refresh})
            else:
                code = secrets.token_urlsafe(32)
                verifier = secrets.token_urlsafe(48)
                rows.append(
                    {
                        "code_hash": _secrets.digest(code),
                        "client_id": self.rp.client_id,
                        "citizen_id": self.citizen.citizen_id,
                        "redirect_uri": REDIRECT,
                        "scope": SCOPE,
                        "nonce": secrets.token_urlsafe(12),
                        "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
                        "code_challenge_method": "S256",
                        "claims_json": None,
                        "auth_time": now,
                        "acr": "substantial",
                        "amr": "swk pin mfa",
                        "sid": _secrets.public_id("s"),
                        "grant_id": grant_id,
                        "created_at": now,
                        "expires_at": now + CODE_LIFETIME,
                    }
                )
                body = urlencode(
                    {
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": REDIRECT,
                        "code_verifier": verifier,
                    }
                )
            lines.append((TOKEN_PATH, self.rp.basic, body))
        return rows, lines

    @property
    def table(self) -> Any:
        from identity.oauth.models import AuthorizationCode, OAuthToken

        model = OAuthToken if self.kind == "refresh" else AuthorizationCode
        return model.__table__  # type: ignore[attr-defined]

    def insert(self, rows: list[dict[str, Any]]) -> tuple[int, int]:
        """Insert the rows in one transaction; their first and last ids."""
        table = self.table
        with self.engine.begin() as connection:
            connection.execute(insert(table), rows)
            first, last = connection.execute(
                select(func.min(table.c.id), func.max(table.c.id)).where(
                    table.c.grant_id.in_([rows[0]["grant_id"], rows[-1]["grant_id"]])
                )
            ).one()
        if last - first + 1 != len(rows):
            raise h.BenchError(f"{self.kind}: inserted ids are not contiguous ({first}..{last})")
        return int(first), int(last)

    def prepare(self, seconds: int) -> None:
        self.batches += 1
        self.count = int(seconds * self.rate * MARGIN) + 300
        self.tag = f"g-{self.kind[0]}{self.batches:03d}-"
        started = time.monotonic()
        rows, lines = self.rows(self.count, self.tag)
        self.first_id, _last = self.insert(rows)
        h.write_lines(self.lines_file, lines)
        h.log(f"    {self.count} {self.kind} grants ready in {time.monotonic() - started:.1f}s")

    def verify(self, result: h.WrkResult) -> None:
        from identity.oauth.models import OAuthToken

        tokens = OAuthToken.__table__  # type: ignore[attr-defined]
        table = self.table
        last = self.first_id + self.count - 1
        like = tokens.c.grant_id.like(self.tag + "%")
        sent = min(result.walk.get("sent", 0), self.count)
        used_column = table.c.refreshed_at if self.kind == "refresh" else table.c.used_at

        def counts() -> tuple[int, int | None, int, int]:
            with self.engine.connect() as connection:
                used, last_used = connection.execute(
                    select(func.count(), func.max(table.c.id)).where(
                        table.c.id.between(self.first_id, last), used_column.is_not(None)
                    )
                ).one()
                issued = connection.execute(
                    select(func.count()).where(like, tokens.c.id > (last if self.kind == "refresh" else 0))
                ).scalar_one()
                revoked = connection.execute(
                    select(func.count()).where(like, tokens.c.revoked_at.is_not(None))
                ).scalar_one()
            return int(used), last_used, int(issued), int(revoked)

        used, last_used, issued, revoked = h.settled(counts)
        problems = []
        if revoked:
            problems.append(f"{revoked} tokens revoked (a grant was reused)")
        if issued != used:
            problems.append(f"{used} {self.kind} grants used but {issued} tokens issued")
        if last_used is not None and last_used >= self.first_id + sent:
            problems.append("a grant wrk never sent was used")
        if not result.requests <= used <= sent:
            problems.append(f"{used} used, wrk counted {result.requests} answers and sent {sent}")
        if problems:
            raise h.BenchError(f"{self.kind} run {self.batches}: " + "; ".join(problems))
        self.in_flight.append(used - result.requests)
        self.rate = max(self.rate if self.batches > 1 else 0.0, result.requests_per_second)
        h.log(
            f"    database: {used} {self.kind} grants used and {issued} tokens issued = {result.requests} "
            f"answers counted by wrk + {used - result.requests} in flight (sent {sent}); none revoked"
        )


def _token_post(env: h.Environment, rp: RelyingParty, form: dict[str, str]) -> httpx.Response:
    return httpx.post(env.eid.url + TOKEN_PATH, data=form, auth=(rp.client_id, rp.client_secret), timeout=10)


def verify_id_token(keys: jwt.PyJWKSet, id_token: str, rp: RelyingParty, issuer: str) -> dict[str, Any]:
    """Check an ID token as a relying party does: signature with the JWKS, aud, iss, times."""
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next((k for k in keys.keys if k.key_id == kid), None)
    if key is None:
        raise h.BenchError(f"ID token signed with unknown key {kid}")
    return dict(
        jwt.decode(
            id_token,
            key.key,
            algorithms=[key.algorithm_name],
            audience=rp.client_id,
            issuer=issuer,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time"]},
        )
    )


def _refresh_check(env: h.Environment, grants: GrantLoad) -> Callable[[], None]:
    def check() -> None:
        rows, lines = grants.rows(1, "g-check-")
        grants.insert(rows)
        old = parse_qs(lines[0][2])["refresh_token"][0]
        first = _token_post(env, grants.rp, {"grant_type": "refresh_token", "refresh_token": old})
        body = first.json() if first.status_code == 200 else {}
        if not {"access_token", "refresh_token", "expires_in"} <= body.keys() or body["refresh_token"] == old:
            raise h.BenchError(f"refresh grant: HTTP {first.status_code} {first.text}")
        if first.headers.get("cache-control") != "no-store":
            raise h.BenchError("refresh grant: the token response is not Cache-Control: no-store")
        info = httpx.get(
            env.eid.url + "/oauth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        if info.status_code != 200 or info.json().get("sub") != grants.citizen.subject:
            raise h.BenchError(f"userinfo with the refreshed token: HTTP {info.status_code} {info.text}")
        again = _token_post(
            env, grants.rp, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
        )
        if again.status_code != 200:
            raise h.BenchError(f"second refresh: HTTP {again.status_code} {again.text}")
        reuse = _token_post(env, grants.rp, {"grant_type": "refresh_token", "refresh_token": old})
        if reuse.status_code != 400 or reuse.json().get("error") != "invalid_grant":
            raise h.BenchError(f"reused refresh token: HTTP {reuse.status_code} {reuse.text}")

    return check


def _code_check(env: h.Environment, grants: GrantLoad, jwks: dict[str, Any]) -> Callable[[], None]:
    def check() -> None:
        rows, lines = grants.rows(1, "g-check-")
        grants.insert(rows)
        form = dict(parse_qs(lines[0][2]))
        form1 = {k: v[0] for k, v in form.items()}
        first = _token_post(env, grants.rp, form1)
        if first.status_code != 200 or "id_token" not in first.json():
            raise h.BenchError(f"code exchange: HTTP {first.status_code} {first.text}")
        claims = verify_id_token(
            jwt.PyJWKSet.from_dict(jwks), first.json()["id_token"], grants.rp, env.service.public_url
        )
        if claims["sub"] != grants.citizen.subject or claims.get("nonce") != rows[0]["nonce"]:
            raise h.BenchError(f"code exchange: unexpected ID token claims {claims}")
        if "at_hash" not in claims or "refresh_token" not in first.json():
            raise h.BenchError(f"code exchange: no at_hash or refresh token: {first.text}")
        replay = _token_post(env, grants.rp, form1)
        if replay.status_code != 400 or replay.json().get("error") != "invalid_grant":
            raise h.BenchError(f"replayed code: HTTP {replay.status_code} {replay.text}")

    return check


# --------------------------------------------------------------------------- complete logins


@dataclass
class LoginRun:
    logins: int
    seconds: float
    driver_cpu: float
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.logins / self.seconds


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn's default too): less CPU for the load generator."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LoginDriver:
    """Scripted browsers and citizen apps doing whole logins, or the same requests to the bare app."""

    def __init__(
        self, env: h.Environment, rp: RelyingParty, apps: list[ca.CitizenApp], jwks: dict[str, Any]
    ) -> None:
        self.env = env
        self.rp = rp
        self.apps = apps
        self.keys = jwt.PyJWKSet.from_dict(jwks)
        self.sample_id_token = ""

    async def login(self, browser: Http1Client, phone: Http1Client, app: ca.CitizenApp) -> None:
        browser.cookies.clear()
        verifier = secrets.token_urlsafe(48)
        state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        params = {
            "client_id": self.rp.client_id,
            "response_type": "code",
            "scope": SCOPE,
            "redirect_uri": REDIRECT,
            "state": state,
            "nonce": nonce,
            "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
        }
        to_login = await browser.get("/oauth/authorize", params=params)
        location = to_login.headers.get("location", "")
        if to_login.status_code != 303 or not location.startswith("/login?request="):
            raise h.BenchError(f"authorize: HTTP {to_login.status_code} {location} {to_login.text[:200]}")
        parked = parse_qs(urlsplit(location).query)["request"][0]
        page = await browser.get(location)
        if page.status_code != 200:
            raise h.BenchError(f"login page: HTTP {page.status_code}")
        started = await browser.post("/api/v1/auth/app", json={"personal_code": app.personal_code})
        if started.status_code != 201:
            raise h.BenchError(f"start app login: HTTP {started.status_code} {started.text}")
        request_id = started.json()["request_id"]
        # The citizen's phone: list pending requests, compare the code, sign, answer.
        listed = await phone.get(
            "/api/v1/app/requests",
            headers={"Authorization": "EID-App " + app.token("GET", "/api/v1/app/requests")},
        )
        pending = [r for r in listed.json().get("requests", []) if r["id"] == request_id]
        if listed.status_code != 200 or not pending:
            raise h.BenchError(f"app list: HTTP {listed.status_code} {listed.text[:300]}")
        if pending[0]["verification_code"] != started.json()["verification_code"]:
            raise h.BenchError("the app and the browser show different verification codes")
        path = f"/api/v1/app/requests/{request_id}"
        answered = await phone.post(
            path,
            content=app.approval_body(base64.b64decode(pending[0]["hash"])),
            headers={"Content-Type": "application/json"},  # as eid-app: the signature authenticates it
        )
        if answered.status_code != 200 or answered.json().get("state") != "completed":
            raise h.BenchError(f"app answer: HTTP {answered.status_code} {answered.text}")
        polled = await browser.get(f"/api/v1/auth/app/{request_id}")
        status = polled.json() if polled.status_code == 200 else {}
        if status.get("state") != "completed" or not status.get("identity"):
            raise h.BenchError(f"poll: HTTP {polled.status_code} {polled.text[:300]}")
        back = await browser.get("/oauth/authorize/resume", params={"request": parked})
        callback = back.headers.get("location", "")
        query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        if back.status_code != 303 or not callback.startswith(REDIRECT) or query.get("state") != state:
            raise h.BenchError(f"resume: HTTP {back.status_code} {callback} {back.text[:200]}")
        tokens = await browser.post(
            TOKEN_PATH,
            data={
                "grant_type": "authorization_code",
                "code": query["code"],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=(self.rp.client_id, self.rp.client_secret),
        )
        if tokens.status_code != 200:
            raise h.BenchError(f"token: HTTP {tokens.status_code} {tokens.text}")
        claims = verify_id_token(self.keys, tokens.json()["id_token"], self.rp, self.env.service.public_url)
        if claims["sub"] != app.subject or claims.get("nonce") != nonce:
            raise h.BenchError(f"ID token for the wrong login: {claims}")
        self.sample_id_token = tokens.json()["id_token"]

    async def _bare(self, browser: Http1Client, phone: Http1Client, app: ca.CitizenApp) -> None:
        """The same 8 requests (methods, headers, bodies) and client-side work, to the bare app."""
        browser.cookies.clear()
        verifier = secrets.token_urlsafe(48)
        params = {
            "client_id": self.rp.client_id,
            "response_type": "code",
            "scope": SCOPE,
            "redirect_uri": REDIRECT,
            "state": secrets.token_urlsafe(12),
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
        }
        fake_id = "rq-" + secrets.token_hex(12)
        answers = [
            await browser.get("/bare/oauth/authorize", params=params),
            await browser.get(f"/bare/login?request={fake_id}"),
            await browser.post("/bare", json={"personal_code": app.personal_code}),
            await phone.get(
                "/bare/api/v1/app/requests",
                headers={"Authorization": "EID-App " + app.token("GET", "/api/v1/app/requests")},
            ),
            await phone.post(
                "/bare",
                content=app.approval_body(os.urandom(32)),
                headers={"Content-Type": "application/json"},
            ),
            await browser.get(f"/bare/api/v1/auth/app/{fake_id}"),
            await browser.get("/bare/oauth/authorize/resume", params={"request": fake_id}),
            await browser.post(
                "/bare",
                data={
                    "grant_type": "authorization_code",
                    "code": secrets.token_urlsafe(32),
                    "redirect_uri": REDIRECT,
                    "code_verifier": verifier,
                },
                auth=(self.rp.client_id, self.rp.client_secret),
            ),
        ]
        if any(a.status_code != 200 for a in answers):
            raise h.BenchError(f"bare sequence: HTTP {[a.status_code for a in answers]}")
        verify_id_token(self.keys, self.sample_id_token, self.rp, self.env.service.public_url)

    async def _run(self, base_url: str, count: int, concurrency: int, bare: bool) -> float:
        remaining = count

        async def worker(index: int) -> None:
            nonlocal remaining
            app = self.apps[index % len(self.apps)]
            async with Http1Client(base_url) as browser, Http1Client(base_url) as phone:
                while remaining > 0:
                    remaining -= 1
                    await (self._bare if bare else self.login)(browser, phone, app)

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return time.perf_counter() - started

    def run(self, count: int, concurrency: int, *, bare: bool) -> LoginRun:
        server = self.env.bare if bare else self.env.eid
        server.check_alive()
        cpu_server, cpu_self = h.cpu_seconds(server.process.pid), _cpu_self()
        timeout = 60 + count  # bounded: at least one login per second, or it is a failure
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                seconds = runner.run(
                    asyncio.wait_for(self._run(server.url, count, concurrency, bare), timeout)
                )
        except TimeoutError as exc:
            raise h.BenchError(f"{count} logins did not finish within {timeout}s") from exc
        except (Http1Error, httpx.HTTPError) as exc:
            raise h.BenchError(f"login driver: {exc!r}") from exc
        return LoginRun(
            logins=count,
            seconds=seconds,
            driver_cpu=_cpu_self() - cpu_self,
            server_cpu=h.cpu_seconds(server.process.pid) - cpu_server,
        )


def completed_logins(env: h.Environment, apps: list[ca.CitizenApp]) -> int:
    from identity.models import ApprovalRequest

    table = ApprovalRequest.__table__  # type: ignore[attr-defined]
    eng = ca.engine(env.service)
    try:
        with eng.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).where(
                        table.c.citizen_id.in_([a.citizen_id for a in apps]),
                        table.c.state == "completed",
                        table.c.consumed_at.is_not(None),
                    )
                ).scalar_one()
            )
    finally:
        eng.dispose()


# --------------------------------------------------------------------------- latency at half the peak


@dataclass
class LatencyRun:
    name: str
    peak: float
    target: float
    delay_ms: int
    results: list[h.WrkResult]

    @property
    def p99(self) -> float:
        return statistics.median(r.latency_ms.get("99%", float("inf")) for r in self.results)

    @property
    def rate(self) -> float:
        return statistics.median(r.requests_per_second for r in self.results)


def latency_at_half_peak(
    env: h.Environment, scenario: h.Scenario, grants: GrantLoad, peak: float, load: h.Load
) -> LatencyRun:
    """wrk with few connections that pause after each answer, tuned to about half the peak.

    The pause is tuned with short runs (at most ``LATENCY_TRIES``), then ``load.rounds``
    runs of ``load.duration`` are measured with it; the p99 shown is their median.
    """
    target = peak / 2
    connections = LATENCY_CONNECTIONS
    latency_load = dataclasses.replace(load, connections=connections)
    delay = max(0, round(connections * 1000 / target - 1000 / peak))  # first guess: latency = 1/peak

    def run(seconds: int) -> h.WrkResult:
        script = h.walk_script(
            env.workdir / f"{grants.kind}-latency.lua",
            grants.lines_file,
            FORM,
            expect='"access_token"',
            delay_ms=delay,
        )
        grants.prepare(seconds)
        result = h.wrk(scenario.url, latency_load, duration=seconds, script=script)
        grants.verify(result)
        h.log(
            f"  latency {scenario.name}: -c{connections}, {delay} ms pause: {result.requests_per_second:.0f} "
            f"req/s (target {target:.0f}), p99 {result.latency_ms.get('99%', 0):.1f} ms"
        )
        return result

    for _attempt in range(LATENCY_TRIES):
        rate = run(max(3, load.duration // 2)).requests_per_second
        if abs(rate - target) <= LATENCY_TOLERANCE * target:
            break
        latency_ms = max(0.0, connections * 1000 / rate - delay)
        delay = max(0, round(connections * 1000 / target - latency_ms))
    results = [run(load.duration) for _ in range(load.rounds)]
    return LatencyRun(scenario.name, peak, target, delay, results)


# --------------------------------------------------------------------------- the benchmark


def _grant_scenarios(
    env: h.Environment, rp: RelyingParty, citizen: ca.CitizenApp, jwks: dict[str, Any]
) -> tuple[list[h.Scenario], dict[str, GrantLoad]]:
    items: list[h.Scenario] = []
    loads: dict[str, GrantLoad] = {}
    eng = ca.engine(env.service)
    for kind, title, initial, expect in (
        ("refresh", "refresh-token grant", 1500.0, '"refresh_token"'),
        ("code", "authorization-code exchange", 800.0, '"id_token"'),
    ):
        grants = GrantLoad(
            kind=kind,
            env=env,
            rp=rp,
            citizen=citizen,
            engine=eng,
            lines_file=env.workdir / f"{kind}.lines",
            rate=initial,
        )
        loads[kind] = grants
        _rows, sample = grants.rows(CEILING_LINES, "g-never-inserted-")
        bare_lines = env.workdir / f"{kind}-bare.lines"
        h.write_lines(bare_lines, sample)
        ceiling = f"bare POST ({kind} body)"
        items.append(
            h.Scenario(
                ceiling,
                env.bare,
                env.bare.url + "/bare",
                script=h.walk_script(
                    env.workdir / f"{kind}-bare.lua", bare_lines, FORM, fixed_path="/bare", wrap=True
                ),
            )
        )
        items.append(
            h.Scenario(
                title,
                env.eid,
                env.eid.url + TOKEN_PATH,
                script=h.walk_script(env.workdir / f"{kind}.lua", grants.lines_file, FORM, expect=expect),
                ceiling=ceiling,
                check=_refresh_check(env, grants) if kind == "refresh" else _code_check(env, grants, jwks),
                prepare=grants.prepare,
                verify=grants.verify,
            )
        )
    return items, loads


@dataclass
class Outcome:
    text: str
    ok: bool


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def bench(env: h.Environment, load: h.Load, logins: int = 400, concurrency: int = 8) -> tuple[str, bool]:
    if load.threads != 1:
        h.log("OIDC benchmark: wrk -t1 (one Lua state walks the single-use grants)")
        load = dataclasses.replace(load, threads=1)
    h.log("OIDC benchmark: registering a client, enrolling citizens over HTTP ...")
    rp = register_client(env.service)
    apps = ca.enrol(env.service, env.eid.url, max(1, concurrency if logins else 1))
    jwks = httpx.get(env.eid.url + "/oauth/jwks", timeout=10).json()
    items, grants = _grant_scenarios(env, rp, apps[0], jwks)
    try:
        h.measure(items, load, h.log)

        bare_runs: list[LoginRun] = []
        login_runs: list[LoginRun] = []
        if logins:
            _login_scenario(env, rp, apps, jwks, load, logins, concurrency, bare_runs, login_runs)

        latency = [
            latency_at_half_peak(env, items[i], grants[kind], items[i].rps, load)
            for i, kind in ((1, "refresh"), (3, "code"))
        ]
    finally:
        for g in {id(g.engine): g.engine for g in grants.values()}.values():
            g.dispose()
    return report(items, grants, bare_runs, login_runs, latency, load, logins, concurrency)


def _login_scenario(
    env: h.Environment,
    rp: RelyingParty,
    apps: list[ca.CitizenApp],
    jwks: dict[str, Any],
    load: h.Load,
    logins: int,
    concurrency: int,
    bare_runs: list[LoginRun],
    login_runs: list[LoginRun],
) -> None:
    """Complete logins and the bare sequence, interleaved round after round."""
    driver = LoginDriver(env, rp, apps, jwks)
    h.log(f"complete logins: {concurrency} concurrent browsers, {logins} logins per measurement")
    warm = max(concurrency, logins // 10)
    before = completed_logins(env, apps)
    driver.run(warm, concurrency, bare=False)
    driver.run(warm, concurrency, bare=True)
    for round_ in range(1, load.rounds + 1):
        for bare, runs, name in (
            (True, bare_runs, "bare 8-request sequence"),
            (False, login_runs, "login"),
        ):
            run = driver.run(logins, concurrency, bare=bare)
            runs.append(run)
            h.log(
                f"  round {round_}/{load.rounds}  {name:<34} {run.rate:7.1f} /s "
                f"(driver CPU {run.driver_cpu / run.seconds:.2f} cores, server "
                f"{run.server_cpu / run.seconds:.2f} cores)"
            )
    done = completed_logins(env, apps) - before
    expected = warm + logins * load.rounds
    if done != expected:
        raise h.BenchError(f"{done} logins completed in the database, {expected} driven")


def _login_rows(
    bare_runs: list[LoginRun], login_runs: list[LoginRun], concurrency: int, passed: bool
) -> list[str]:
    bare_rate = _median([r.rate for r in bare_runs])
    login_rate = _median([r.rate for r in login_runs])
    login_share = _median([m.rate / b.rate for m, b in zip(login_runs, bare_runs, strict=True)])
    return [
        f"| bare {REQUESTS_PER_LOGIN}-request sequence, same driver (ceiling) | {bare_rate:.0f} | 100% | | | |",
        f"| complete login ({REQUESTS_PER_LOGIN} requests, {concurrency} browsers) | {login_rate:.1f} | "
        f"{login_share:.0%} of the bare sequence | | ≥ {LOGIN_GOAL:,.0f}/s | {_verdict(passed)} |",
    ]


def _login_text(bare_runs: list[LoginRun], login_runs: list[LoginRun], logins: int) -> str:
    return (
        "Complete logins, per measurement (median): "
        f"{_median([r.seconds for r in login_runs]):.1f} s for {logins} logins; load generator "
        f"{_median([r.driver_cpu / r.seconds for r in login_runs]):.2f} cores, "
        f"{_median([r.driver_cpu / r.logins * 1000 for r in login_runs]):.1f} ms CPU per login; "
        f"eid serve {_median([r.server_cpu / r.seconds for r in login_runs]):.2f} cores, "
        f"{_median([r.server_cpu / r.logins * 1000 for r in login_runs]):.1f} ms CPU per login "
        f"(bare sequence: generator {_median([r.driver_cpu / r.seconds for r in bare_runs]):.2f} cores, "
        f"bare app {_median([r.server_cpu / r.seconds for r in bare_runs]):.2f} cores)."
    )


def _median(values: list[float]) -> float:
    return statistics.median(values)


def report(
    items: list[h.Scenario],
    grants: dict[str, GrantLoad],
    bare_runs: list[LoginRun],
    login_runs: list[LoginRun],
    latency: list[LatencyRun],
    load: h.Load,
    logins: int,
    concurrency: int,
) -> tuple[str, bool]:
    by_name = {s.name: s for s in items}
    refresh, code = items[1], items[3]
    refresh_rate = refresh.rps
    checks = {
        "refresh": refresh_rate >= REFRESH_GOAL,
        **{f"p99 {run.name}": run.p99 < P99_GOAL_MS for run in latency},
    }
    if login_runs:
        login_rate = _median([r.rate for r in login_runs])
        checks["logins"] = login_rate >= LOGIN_GOAL
    lines = [
        "### OpenID Connect: token endpoint and complete logins",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, wrk -t{load.threads} "
        f"-c{load.connections} -d{load.duration}s, {load.rounds} round(s); rates: median, % of ceiling: "
        "median of the per-round ratios, p99: median over the runs",
        "",
        "| scenario | per second | % of ceiling | p99 | goal | result |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for s in items:
        p99 = statistics.median(r.latency_ms.get("99%", 0.0) for r in s.results)
        if s.ceiling is None:
            lines.append(f"| {s.name} (ceiling) | {s.rps:.0f} | 100% | {p99:.1f} ms | | |")
            continue
        share = s.share_of(by_name[s.ceiling])
        if s is refresh:
            goal, verdict = f"≥ {REFRESH_GOAL:,.0f}/s", _verdict(checks["refresh"])
        else:
            goal, verdict = "none", "info"
        lines.append(
            f"| {s.name} | {s.rps:.0f} | {share:.0%} of {s.ceiling} | {p99:.1f} ms | {goal} | {verdict} |"
        )
    if login_runs:
        lines += _login_rows(bare_runs, login_runs, concurrency, checks["logins"])
    for run in latency:
        lines.append(
            f"| token endpoint at half peak: {run.name} (-c{LATENCY_CONNECTIONS}, {run.delay_ms} ms pause) | "
            f"{run.rate:.0f} (target {run.target:.0f}) | | {run.p99:.1f} ms | "
            f"p99 < {P99_GOAL_MS:.0f} ms | {_verdict(checks[f'p99 {run.name}'])} |"
        )
    if login_runs:
        lines += ["", _login_text(bare_runs, login_runs, logins)]
    else:
        lines += ["", "Complete logins: not measured (`--logins 0`)."]
    lines += [
        "",
        "Server CPU at the peak (-c"
        + str(load.connections)
        + "): refresh "
        + h.cpu_text(refresh.results)
        + "; code "
        + h.cpu_text(code.results)
        + "; bare POST "
        + h.cpu_text(items[0].results)
        + ".",
        "",
        "Latency at the peak (-c"
        + str(load.connections)
        + "): refresh "
        + h.latency_text(refresh.results)
        + "; code "
        + h.latency_text(code.results)
        + ". At half peak: "
        + "; ".join(
            f"{run.name} {h.latency_text(run.results)} (p99 of the runs: "
            + ", ".join(f"{r.latency_ms.get('99%', 0):.1f}" for r in run.results)
            + " ms)"
            for run in latency
        )
        + ".",
        "",
        "Every run checked in the database: grants used = wrk's count + "
        + ", ".join(f"{h.span(g.in_flight)} ({k})" for k, g in grants.items())
        + " in flight when wrk stopped, one new token each, none revoked"
        + ("; every login's approval completed and consumed." if login_runs else "."),
    ]
    return "\n".join(lines), all(checks.values())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--logins", type=int, default=400, help="complete logins per measurement; 0 skips them (default 400)"
    )
    parser.add_argument(
        "--login-concurrency", type=int, default=8, help="concurrent browsers in the login driver (default 8)"
    )


def main() -> int:
    parser = h.arguments(__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    load = h.load_from(args)
    if args.logins < 0 or args.login_concurrency < 1:
        raise SystemExit("--logins must be 0 (skip complete logins) or more, --login-concurrency at least 1")
    return h.with_service(args.keep, lambda env: bench(env, load, args.logins, args.login_concurrency))


if __name__ == "__main__":
    sys.exit(main())
