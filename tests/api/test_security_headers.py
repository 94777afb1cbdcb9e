"""Security headers on every response, a CSP the pages live with, HSTS only over HTTPS."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx

from tests.api._inprocess import client_for
from tests.conftest import RunningServer, ServiceEnv

API = Path(__file__).parents[2] / "api"


def _directives(policy: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in (p.strip() for p in policy.split(";")) if part}


def _assert_common(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    policy = _directives(headers["content-security-policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-eval'" not in headers["content-security-policy"]


def test_every_kind_of_answer_carries_them(server: RunningServer) -> None:
    answers = [
        httpx.get(server.url + "/healthz"),  # JSON
        httpx.get(server.url + "/no/such/page"),  # 404 problem
        httpx.post(server.url + "/oauth/token", data={"grant_type": "nope"}),  # OAuth error
        httpx.get(server.url + "/oauth/authorize"),  # HTML error page
        httpx.get(server.url + "/static/login.js"),  # static file
        httpx.get(server.url + "/ca/root.crt"),  # binary
    ]
    for response in answers:
        _assert_common(response)
        policy = _directives(response.headers["content-security-policy"])
        assert policy["default-src"] == ["'self'"]
        assert "script-src" not in policy  # falls back to 'self': no inline script anywhere
        assert "strict-transport-security" not in response.headers  # plain http


class _Inline(HTMLParser):
    """Collects what a strict CSP would block in a page: inline scripts, event handler
    attributes, javascript: URLs, inline styles, off-site resources."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and not values.get("src"):
            self.blocked.append("inline <script>")
        for name, value in attrs:
            if name.startswith("on"):
                self.blocked.append(f"{tag} {name}=")
            if name == "style":
                self.blocked.append(f"{tag} style=")
            if (
                name in ("src", "href", "action")
                and value
                and re.match(r"(?i)\s*(javascript:|https?://)", value)
            ):
                self.blocked.append(f"{tag} {name}={value}")


def test_templates_and_login_script_fit_the_policy() -> None:
    templates = sorted((API / "templates").glob("*.html"))
    assert templates
    for template in templates:
        parser = _Inline()
        parser.feed(template.read_text(encoding="utf-8"))
        assert parser.blocked == [], template.name
    script = (API / "static" / "login.js").read_text(encoding="utf-8")
    # Everything login.js fetches or navigates to is on our own origin (connect-src 'self').
    targets = re.findall(r"(?:fetch|assign)\(\s*\"([^\"]*)\"", script)
    assert targets and all(t.startswith("/") and not t.startswith("//") for t in targets)
    assert "eval(" not in script and "innerHTML" not in script


def test_login_page_is_served_with_the_policy(server: RunningServer) -> None:
    # A page the browser really renders (the error page of a bare authorization request).
    page = httpx.get(server.url + "/oauth/authorize")
    assert page.headers["content-type"].startswith("text/html")
    parser = _Inline()
    parser.feed(page.text)
    assert parser.blocked == []
    _assert_common(page)


def test_api_docs_policy_names_exactly_their_inline_script(server: RunningServer) -> None:
    for path in ("/docs", "/docs/oauth2-redirect", "/redoc"):
        response = httpx.get(server.url + path)
        assert response.status_code == 200
        _assert_common(response)
        policy = _directives(response.headers["content-security-policy"])
        inline = re.findall(r"<script>(.*?)</script>", response.text, flags=re.DOTALL)
        expected = {
            "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in inline
        }
        hashes = {v for v in policy["script-src"] if v.startswith("'sha256-")}
        assert hashes == expected
        assert bool(hashes) == (path != "/redoc")  # ReDoc has no inline script
        assert "'unsafe-inline'" not in policy["script-src"]


def test_hsts_when_the_public_url_is_https(service_env: ServiceEnv) -> None:
    with client_for(service_env, public_url="https://eid.example") as client:
        response = client.get("/healthz")
    assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_hsts_only_when_a_trusted_proxy_says_https(service_env: ServiceEnv) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.4"}
    with client_for(service_env, peer="10.1.2.3", proxy={"trusted": "10.0.0.0/8"}) as client:
        assert client.get("/healthz", headers=forwarded).headers["strict-transport-security"]
        assert "strict-transport-security" not in client.get("/healthz").headers
    # The same header from anyone else is ignored.
    with client_for(service_env, peer="192.0.2.77", proxy={"trusted": "10.0.0.0/8"}) as client:
        assert "strict-transport-security" not in client.get("/healthz", headers=forwarded).headers
    with client_for(service_env, peer="10.1.2.3") as client:  # no proxies configured
        assert "strict-transport-security" not in client.get("/healthz", headers=forwarded).headers


def test_forwarded_host_only_from_a_trusted_proxy(service_env: ServiceEnv) -> None:
    # The problem detail of a 404 echoes nothing of the host; the OpenAPI "servers" do not
    # either, so read what the app saw from the docs page's absolute-free links instead:
    # a redirect FastAPI builds from the request URL (trailing slash) shows the host.
    headers = {"X-Forwarded-Host": "eid.example", "X-Forwarded-Proto": "https"}
    with client_for(service_env, peer="10.9.9.9", proxy={"trusted": "10.0.0.0/8"}) as client:
        moved = client.get("/healthz/", headers=headers, follow_redirects=False)
    with client_for(service_env, peer="192.0.2.5", proxy={"trusted": "10.0.0.0/8"}) as client:
        ignored = client.get("/healthz/", headers=headers, follow_redirects=False)
    assert moved.status_code == ignored.status_code == 307
    assert moved.headers["location"] == "https://eid.example/healthz"
    assert not ignored.headers["location"].startswith("https://eid.example")


def test_an_unhandled_error_still_gets_headers_and_problem_json(service_env: ServiceEnv) -> None:
    with client_for(service_env) as client:
        app: Any = client.app

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("unexpected")

        response = client.get("/boom", headers={"X-Request-ID": "boom-request-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Internal Server Error"
    assert "unexpected" not in response.text
    assert response.headers["x-request-id"] == "boom-request-1"
    _assert_common(response)
