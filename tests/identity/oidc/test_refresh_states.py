"""Refresh tokens and clients as the token endpoint reads them (prepared statements on the
DBAPI connection, clients re-read on every request): expiry and revocation of a refresh
token, and a client disabled or given a new secret after it was last seen."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from identity import _secrets
from identity.oauth.models import OAuthClient, OAuthToken
from keys.models import utcnow
from tests.conftest import RunningServer
from tests.identity.oidc.conftest import (
    ALL_SCOPES,
    Browser,
    Citizen,
    RelyingParty,
    database,
    register_rp,
)
from tests.identity.oidc.test_refresh import first_tokens, refresh


def _set_token(server: RunningServer, refresh_token: str, **values: object) -> None:
    with database(server) as session:
        session.execute(
            update(OAuthToken)
            .where(OAuthToken.refresh_token_hash == _secrets.digest(refresh_token))  # type: ignore[arg-type]
            .values(**values)
        )
        session.commit()


def _set_client(server: RunningServer, client_id: str, **values: object) -> None:
    with database(server) as session:
        session.execute(
            update(OAuthClient).where(OAuthClient.client_id == client_id).values(**values)  # type: ignore[arg-type]
        )
        session.commit()


def test_an_expired_refresh_token_is_invalid_grant(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    tokens = first_tokens(server, browser, citizen, rp)
    _set_token(server, tokens["refresh_token"], refresh_expires_at=utcnow() - timedelta(seconds=1))

    response = refresh(server, rp, tokens["refresh_token"])

    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_a_refresh_token_close_to_its_expiry_still_works(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    # The expiry is compared in SQL: the bound "now" must be in the column's own format.
    tokens = first_tokens(server, browser, citizen, rp)
    _set_token(server, tokens["refresh_token"], refresh_expires_at=utcnow() + timedelta(seconds=30))

    assert refresh(server, rp, tokens["refresh_token"]).status_code == 200


def test_a_revoked_refresh_token_is_invalid_grant(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    tokens = first_tokens(server, browser, citizen, rp)
    _set_token(server, tokens["refresh_token"], revoked_at=utcnow())

    response = refresh(server, rp, tokens["refresh_token"])

    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_an_unknown_refresh_token_is_invalid_grant(server: RunningServer, rp: RelyingParty) -> None:
    response = refresh(server, rp, "not-a-token-we-issued")

    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert response.headers["cache-control"] == "no-store"


def test_a_client_disabled_after_its_last_request_is_refused_at_once(
    server: RunningServer, browser: Browser, citizen: Citizen
) -> None:
    rp = register_rp(server, *ALL_SCOPES)
    tokens = first_tokens(server, browser, citizen, rp)
    assert (fresh := refresh(server, rp, tokens["refresh_token"])).status_code == 200
    _set_client(server, rp.client_id, disabled_at=utcnow())

    response = refresh(server, rp, fresh.json()["refresh_token"])

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


def test_a_new_client_secret_takes_effect_at_once(
    server: RunningServer, browser: Browser, citizen: Citizen
) -> None:
    rp = register_rp(server, *ALL_SCOPES)
    tokens = first_tokens(server, browser, citizen, rp)
    assert (fresh := refresh(server, rp, tokens["refresh_token"])).status_code == 200
    _set_client(server, rp.client_id, client_secret_hash=_secrets.digest("the-new-secret"))

    old = refresh(server, rp, fresh.json()["refresh_token"])
    assert old.status_code == 401 and old.json()["error"] == "invalid_client"

    new = refresh(server, RelyingParty(rp.client_id, "the-new-secret"), fresh.json()["refresh_token"])
    assert new.status_code == 200, new.text
