"""Rate limits: token buckets per client address, 429 with Retry-After in each endpoint's
own error format, forwarded addresses believed from trusted proxies only."""

from __future__ import annotations

from typing import Any

import pytest

from api.ratelimit import TokenBuckets, client_key, rule_for
from api.settings import RateRule
from tests.api._inprocess import client_for
from tests.conftest import ServiceEnv

# Two requests at once, then about one a day: no refill while a test runs.
TIGHT = {"per_minute": 0.001, "burst": 2}


def _limits(**rules: dict[str, Any]) -> dict[str, Any]:
    return {"rate_limits": {"enabled": True, **rules}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateRule(per_minute=6, burst=3), max_clients=100, clock=clock)
    assert [buckets.take("a").allowed for _ in range(4)] == [True, True, True, False]
    refused = buckets.take("a")
    assert not refused.allowed and refused.retry_after == 10  # one token per 10 s
    assert buckets.take("b").allowed  # another client has its own bucket
    clock.now += 10
    assert buckets.take("a").allowed and not buckets.take("a").allowed
    clock.now += 3600  # refills up to the burst, no further
    assert [buckets.take("a").allowed for _ in range(4)] == [True, True, True, False]


def test_bucket_memory_is_bounded() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateRule(per_minute=1, burst=1), max_clients=100, clock=clock)
    assert buckets.take("first").allowed and not buckets.take("first").allowed
    for n in range(100):
        buckets.take(f"client-{n}")
    assert len(buckets._buckets) == 100
    assert buckets.take("first").allowed  # forgotten, so a fresh bucket


def test_an_ipv6_client_is_its_slash_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:198.51.100.7") == client_key("198.51.100.7") == "198.51.100.7"
    assert client_key("testclient") == "testclient"


@pytest.mark.parametrize(
    ("method", "path", "rule"),
    [
        ("POST", "/api/v1/auth/app", "login"),
        ("GET", "/api/v1/auth/web-eid/challenge", "login"),
        ("GET", "/oauth/authorize", "login"),
        ("POST", "/oauth/par", "login"),
        ("GET", "/api/v1/auth/app/abc", "polling"),
        ("GET", "/api/v1/app/requests", "polling"),
        ("GET", "/api/v1/signing/abc", "polling"),
        ("POST", "/api/v1/enrolment", "enrolment"),
        ("POST", "/api/v1/enrolment/xyz/complete", "enrolment"),
        ("POST", "/api/v1/admin/citizens", "admin"),
        ("GET", "/api/v1/signing/abc/document", None),
        ("POST", "/oauth/token", None),
        ("GET", "/healthz", None),
    ],
)
def test_rule_table(method: str, path: str, rule: str | None) -> None:
    assert rule_for(method, path) == rule


def test_enrolment_limit_answers_problem_json(service_env: ServiceEnv) -> None:
    with client_for(service_env, **_limits(enrolment=TIGHT)) as client:
        tries = [client.post("/api/v1/enrolment", json={"activation_code": "WRONG-CODE"}) for _ in range(3)]
    assert 429 not in [r.status_code for r in tries[:2]]
    refused = tries[2]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) > 3600
    body = refused.json()
    assert body["status"] == 429 and body["type"].endswith("/rate-limited")
    assert refused.headers["x-request-id"] and refused.headers["x-content-type-options"] == "nosniff"


def test_login_polling_and_admin_limits(service_env: ServiceEnv) -> None:
    limits = _limits(login=TIGHT, polling=TIGHT, admin=TIGHT)
    with client_for(service_env, **limits) as client:
        logins = [client.post("/api/v1/auth/app", json={"personal_code": "38001085718"}) for _ in range(3)]
        polls = [client.get("/api/v1/auth/app/unknown") for _ in range(3)]
        admin = [client.get("/api/v1/admin/citizens/EE/38001085718") for _ in range(3)]
        unlimited = [client.get("/healthz").status_code for _ in range(10)]
    for answers in (logins, polls, admin):
        assert 429 not in [r.status_code for r in answers[:2]]
        assert answers[2].status_code == 429 and "retry-after" in answers[2].headers
    assert unlimited == [200] * 10


def test_oauth_endpoints_keep_their_error_format(service_env: ServiceEnv) -> None:
    with client_for(service_env, **_limits(login=TIGHT)) as client:
        for _ in range(2):
            client.post("/oauth/par", data={"client_id": "x"})
        par = client.post("/oauth/par", data={"client_id": "x"})
    assert par.status_code == 429 and par.headers["retry-after"]
    assert par.json()["error"] == "temporarily_unavailable"
    with client_for(service_env, **_limits(login=TIGHT)) as client:
        for _ in range(2):
            client.get("/oauth/authorize")
        page = client.get("/oauth/authorize")
    # The authorization endpoint is a browser page: a readable page, not JSON.
    assert page.status_code == 429 and page.headers["content-type"].startswith("text/html")
    assert "Too many attempts" in page.text


def test_limits_follow_the_forwarded_client_only_behind_trusted_proxies(service_env: ServiceEnv) -> None:
    sections = _limits(enrolment=TIGHT) | {"proxy": {"trusted": "10.0.0.0/8"}}

    def tries(client: Any, forwarded_for: str) -> list[int]:
        headers = {"X-Forwarded-For": forwarded_for}
        return [
            client.post("/api/v1/enrolment", json={"activation_code": "X"}, headers=headers).status_code
            for _ in range(3)
        ]

    with client_for(service_env, peer="10.0.0.5", **sections) as client:
        # Two citizens behind the same proxy: each their own bucket.
        assert tries(client, "198.51.100.1")[2] == 429
        assert tries(client, "198.51.100.2")[2] == 429
        # A client cannot hide behind a made-up hop: the proxy appends the real address.
        assert tries(client, "203.0.113.99, 198.51.100.1")[0] == 429
    with client_for(service_env, peer="192.0.2.50", **sections) as client:
        # Not a trusted proxy: forged X-Forwarded-For values all land in one bucket.
        results = [
            client.post(
                "/api/v1/enrolment",
                json={"activation_code": "X"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(3)
        ]
    assert results[2] == 429


def test_limits_can_be_switched_off(service_env: ServiceEnv) -> None:
    limits = {"rate_limits": {"enabled": False, "enrolment": TIGHT}}
    with client_for(service_env, **limits) as client:
        codes = [
            client.post("/api/v1/enrolment", json={"activation_code": "X"}).status_code for _ in range(5)
        ]
    assert 429 not in codes
