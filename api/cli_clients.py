"""``eid client`` and ``eid keys``: OpenID Connect clients and the token signing keys."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlmodel import col, select

from keys.models import as_utc

from .cli_common import emit, fail, friendly_errors, service_session


@click.group()
def client() -> None:
    """OAuth 2.0 / OpenID Connect clients (relying parties and service clients)."""


@client.command("add")
@click.option("--name", required=True, help="Name shown to citizens.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI (repeatable).")
@click.option("--public", is_flag=True, help="A public client (no secret; PKCE required).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="Allowed scope (repeatable): openid, profile, offline_access, admin, signing, seal.",
)
@click.option(
    "--post-logout-redirect-uri", "post_logout", multiple=True, help="Allowed after RP-initiated logout."
)
@click.option("--backchannel-logout-uri", default=None, help="Where back-channel logout tokens are sent.")
@click.option("--first-party", is_flag=True, help="Pre-approved government service: no consent page.")
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JWKS file: the client authenticates with private_key_jwt.",
)
@click.option(
    "--id-token-alg",
    type=click.Choice(["RS256", "ES256"]),
    default=None,
    help="ID token signature algorithm.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def client_add(
    name: str,
    redirect_uris: tuple[str, ...],
    public: bool,
    scopes: tuple[str, ...],
    post_logout: tuple[str, ...],
    backchannel_logout_uri: str | None,
    first_party: bool,
    jwks_file: str | None,
    id_token_alg: str | None,
    as_json: bool,
) -> None:
    """Register a client; prints client_id and client_secret (shown once).

    Without --redirect-uri it is a service client using client_credentials (e.g. the
    admin API with --scope admin).
    """
    from identity.oauth import clients

    extra: dict[str, Any] = {}
    if post_logout:
        extra["post_logout_redirect_uris"] = list(post_logout)
    if backchannel_logout_uri:
        extra["backchannel_logout_uri"] = backchannel_logout_uri
        extra["backchannel_logout_session_required"] = True
    if jwks_file:
        from pathlib import Path

        try:
            extra["jwks"] = json.loads(Path(jwks_file).read_text())
        except ValueError:
            fail(f"{jwks_file} is not JSON")
        extra["token_endpoint_auth_method"] = "private_key_jwt"
    if id_token_alg:
        extra["id_token_signed_response_alg"] = id_token_alg
    with service_session() as (_settings_, session, _keystore):
        created = clients.register(
            session,
            name=name,
            redirect_uris=list(redirect_uris),
            public=public,
            scopes=list(scopes) or None,
            first_party=first_party,
            extra_metadata=extra,
            actor="eid cli",
        )
        data = {
            "client_id": created.client.client_id,
            "client_secret": created.client_secret,
            **created.client.metadata,
        }
    emit(data, as_json, lambda d: f"client_id: {d['client_id']}\nclient_secret: {d['client_secret']}")


@click.group("keys")
def keys_() -> None:
    """Token signing keys."""


@keys_.command("rotate")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def keys_rotate(as_json: bool) -> None:
    """New ID token signing keys (RS256, ES256); old ones stay published until their tokens expire."""
    from identity.oauth import keys as signing

    with service_session() as (_settings_, session, keystore):
        created = [{"key_id": r.key_id, "alg": r.alg} for r in signing.rotate(session, keystore)]
    emit(created, as_json, lambda items: "\n".join(f"{i['alg']}: {i['key_id']} (active)" for i in items))


@keys_.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def keys_list(as_json: bool) -> None:
    """Signing keys: which sign now, which are only published."""
    from identity.oauth import keys as signing
    from identity.oauth.models import SigningKeyRecord

    with service_session() as (_settings_, session, _keystore):
        signing.ensure_registered(session)
        rows = [
            {
                "key_id": r.key_id,
                "alg": r.alg,
                "retire_at": as_utc(r.retire_at).isoformat() if r.retire_at else None,
            }
            for r in session.exec(select(SigningKeyRecord).order_by(col(SigningKeyRecord.created_at)))
        ]
    emit(
        rows,
        as_json,
        lambda items: "\n".join(
            f"{i['alg']}  {i['key_id']}  {'active' if not i['retire_at'] else 'published until ' + i['retire_at'][:16]}"
            for i in items
        ),
    )
