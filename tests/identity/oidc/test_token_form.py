"""The token endpoint reads its body with a strict urlencoded parser (``api.oauth.form``)."""

from __future__ import annotations

import httpx
import pytest

from api.oauth.form import MAX_FORM_BYTES, MalformedForm, is_form, parse_form
from tests.conftest import RunningServer
from tests.identity.oidc.conftest import RelyingParty


@pytest.mark.parametrize(
    ("body", "pairs"),
    [
        (
            b"grant_type=refresh_token&refresh_token=abc",
            [("grant_type", "refresh_token"), ("refresh_token", "abc")],
        ),
        (b"a=1+2&b=%2B%26%3D", [("a", "1 2"), ("b", "+&=")]),
        (b"scope=openid%20profile", [("scope", "openid profile")]),
        (b"name=%C3%A4", [("name", "ä")]),
        (b"a=1&&b=&c", [("a", "1"), ("b", ""), ("c", "")]),
        (b"a=1&a=2", [("a", "1"), ("a", "2")]),
        (b"", []),
        (b"a=x=y", [("a", "x=y")]),
    ],
)
def test_well_formed_bodies(body: bytes, pairs: list[tuple[str, str]]) -> None:
    assert parse_form(body) == pairs


@pytest.mark.parametrize(
    "body",
    [
        b"a=%zz",
        b"a=%4",
        b"a=100%",
        b"a=%C3",  # half a UTF-8 character
        b"a=%FF",
        "a=ä".encode(),  # raw non-ASCII byte
        b"a=1\nb=2",
        b"a=\x00",
        b"=value",
        b"a=" + b"x" * MAX_FORM_BYTES,
    ],
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedForm):
        parse_form(body)


def test_content_types() -> None:
    assert is_form("application/x-www-form-urlencoded")
    assert is_form("Application/X-WWW-Form-Urlencoded; charset=UTF-8")
    assert not is_form("application/json")
    assert not is_form("multipart/form-data; boundary=x")
    assert not is_form(None)


def _post(server: RunningServer, rp: RelyingParty, body: bytes, content_type: str) -> httpx.Response:
    return httpx.post(
        server.url + "/oauth/token",
        content=body,
        headers={"content-type": content_type},
        auth=(rp.client_id, rp.client_secret or ""),
    )


def test_a_malformed_body_is_invalid_request(server: RunningServer, rp: RelyingParty) -> None:
    response = _post(
        server, rp, b"grant_type=refresh_token&refresh_token=%zz", "application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.headers["cache-control"] == "no-store"
    assert "access_token" not in response.json()


def test_a_repeated_parameter_is_invalid_request(server: RunningServer, rp: RelyingParty) -> None:
    response = _post(
        server,
        rp,
        b"grant_type=refresh_token&refresh_token=a&refresh_token=b",
        "application/x-www-form-urlencoded",
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.headers["cache-control"] == "no-store"


def test_a_body_that_is_not_a_form_gets_no_token(server: RunningServer, rp: RelyingParty) -> None:
    response = _post(server, rp, b'{"grant_type": "refresh_token"}', "application/json")

    assert response.status_code == 400
    assert response.json()["error"] in {"invalid_request", "unsupported_grant_type"}
    assert response.headers["cache-control"] == "no-store"


def test_a_public_url_without_https_is_still_refused() -> None:
    # The transport check is made once per URI (``api.oauth.server``), never skipped.
    from authlib.oauth2.rfc6749.errors import InsecureTransportError
    from sqlmodel import Session

    from api.oauth.server import Request

    def request(uri: str) -> Request:
        session = Session()  # never used: no statement runs
        return Request(method="POST", uri=uri, headers={}, query=[], form=[], db=session)

    for _ in range(2):
        with pytest.raises(InsecureTransportError):
            request("http://eid.example/oauth/token")
    assert request("https://eid.example/oauth/token").uri == "https://eid.example/oauth/token"
    assert request("http://127.0.0.1:8000/oauth/token").uri == "http://127.0.0.1:8000/oauth/token"
