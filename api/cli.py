"""The ``eid`` command line for operators.

Every command that prints data for scripts takes ``--json``. Errors print one line on
stderr and exit with status 1 (2 for usage errors); never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import click
from asn1crypto import pem, x509
from pydantic import ValidationError
from sqlmodel import Session, col, select

from keys import audit
from keys.ca import RevocationReason, find
from keys.errors import ServiceError
from keys.models import CertificateRecord, as_utc
from keys.pki import load
from keys.revocation import release_hold, revoke_certificate

from . import db
from .services import init_service, open_keystore, pki_config
from .settings import Settings

P = ParamSpec("P")
R = TypeVar("R")


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one readable line."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ServiceError as exc:
            _fail(str(exc))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
                for error in exc.errors()
            )
            _fail(f"invalid configuration: {problems}")
        raise AssertionError("unreachable")

    return wrapper


def _settings() -> Settings:
    return Settings()


@contextmanager
def _session() -> Iterator[tuple[Settings, Session, Any]]:
    settings = _settings()
    engine = db.make_engine(settings.resolved_database_url)
    db.upgrade(engine)
    keystore = open_keystore(settings)
    try:
        with Session(engine) as session:
            yield settings, session, keystore
    finally:
        keystore.close()
        engine.dispose()


def _emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(text(data))


@click.group()
@click.version_option("0.1.0", prog_name="eid")
def main() -> None:
    """Operate the citizen e-ID and e-signature service."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def init(as_json: bool) -> None:
    """Create the data directory, database, keys and PKI (only what is missing)."""
    settings = _settings()
    pki = init_service(settings)
    data = {
        "data_dir": str(settings.data_dir),
        "database": settings.resolved_database_url.split("@")[-1],
        "root_ca": pki.root.certificate.subject.human_friendly,
        "root_serial": format(pki.root.certificate.serial_number, "x"),
        "citizen_ca_serial": format(pki.citizen_ca.certificate.serial_number, "x"),
        "public_url": settings.public_url,
    }
    _emit(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@friendly_errors
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API and pages."""
    import uvicorn

    from .logs import config as log_config
    from .services import Services

    settings = _settings()
    # Fail here, readably, rather than inside a worker's start-up.
    Services.start(settings).close()
    _reset_metrics_directory()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # X-Forwarded-* are handled in the app, from EID_PROXY__TRUSTED only (api/proxy.py).
        proxy_headers=False,
        # JSON or text lines with personal codes masked; the app logs each request itself.
        log_config=log_config(settings.logging),
        access_log=False,
        # uvicorn's supervisor kills a worker that does not answer its ping in time (5 s by
        # default); importing pyHanko and friends on a busy machine can take longer, and the
        # replacement would be killed the same way, forever.
        timeout_worker_healthcheck=60,
    )


def _reset_metrics_directory() -> None:
    """With several workers, prometheus_client keeps metric values in files under
    PROMETHEUS_MULTIPROC_DIR; those of a previous run would be added to this one's."""
    import os
    from pathlib import Path

    if folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()


@main.group()
def db_() -> None:
    """Database schema."""


main.add_command(db_, name="db")


@db_.command("upgrade")
@friendly_errors
def db_upgrade() -> None:
    """Apply all pending migrations."""
    settings = _settings()
    engine = db.make_engine(settings.resolved_database_url)
    try:
        db.upgrade(engine)
        click.echo(f"database at revision {db.current_revision(engine)}")
    finally:
        engine.dispose()


@main.group()
def cert() -> None:
    """Certificates issued by the service's CAs."""


def _summary(record: CertificateRecord) -> dict[str, Any]:
    return {
        "serial": record.serial,
        "issuer": record.issuer,
        "profile": record.profile,
        "subject": record.subject,
        "state": record.state,
        "not_before": as_utc(record.not_before).isoformat(),
        "not_after": as_utc(record.not_after).isoformat(),
        "revoked_at": as_utc(record.revoked_at).isoformat() if record.revoked_at else None,
        "revocation_reason": record.revocation_reason,
    }


@cert.command("list")
@click.option("--profile", help="Only this profile (e.g. citizen-auth).")
@click.option("--state", type=click.Choice(["reserved", "issued", "revoked"]), help="Only this state.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def cert_list(profile: str | None, state: str | None, as_json: bool) -> None:
    """List certificates, newest first."""
    with _session() as (_settings_, session, _keystore):
        query = select(CertificateRecord).order_by(col(CertificateRecord.id).desc())
        if profile:
            query = query.where(CertificateRecord.profile == profile)
        if state:
            query = query.where(CertificateRecord.state == state)
        rows = [_summary(r) for r in session.exec(query)]

    def text(items: list[dict[str, Any]]) -> str:
        lines = [f"{'SERIAL':34} {'PROFILE':15} {'STATE':8} {'NOT AFTER':10} SUBJECT"]
        lines += [
            f"{r['serial']:34} {r['profile']:15} {r['state']:8} {r['not_after'][:10]:10} {r['subject']}"
            for r in items
        ]
        return "\n".join(lines)

    _emit(rows, as_json, text)


@cert.command("show")
@click.argument("serial")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--pem", "as_pem", is_flag=True, help="Print the certificate in PEM.")
@friendly_errors
def cert_show(serial: str, as_json: bool, as_pem: bool) -> None:
    """Show one certificate by serial (hex)."""
    with _session() as (_settings_, session, _keystore):
        record = find(session, serial)
    if as_pem:
        if record.der is None:
            _fail(f"certificate {record.serial} was reserved but never issued")
        assert record.der is not None
        click.echo(pem.armor("CERTIFICATE", record.der).decode("ascii"), nl=False)
        return
    data = _summary(record)
    if record.der is not None:
        parsed = x509.Certificate.load(record.der)
        data["key_usage"] = sorted(parsed.key_usage_value.native) if parsed.key_usage_value else []
        data["extended_key_usage"] = (
            parsed.extended_key_usage_value.native if parsed.extended_key_usage_value else []
        )
    _emit(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


_REASONS = [reason.value.replace("_", "-") for reason in RevocationReason]


@cert.command("revoke")
@click.argument("serial")
@click.option("--reason", type=click.Choice(_REASONS), default="unspecified", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def cert_revoke(serial: str, reason: str, as_json: bool) -> None:
    """Revoke a certificate; OCSP and the CRL show it at once."""
    with _session() as (settings, session, keystore):
        pki = load(session, keystore, pki_config(settings))
        record = revoke_certificate(
            session,
            keystore,
            pki,
            serial,
            reason=RevocationReason(reason.replace("-", "_")),
            actor="eid cli",
            crl_validity=timedelta(hours=settings.crl.validity_hours),
        )
        data = _summary(record)
    _emit(data, as_json, lambda d: f"revoked {d['serial']} ({d['revocation_reason']})")


@cert.command("release")
@click.argument("serial")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def cert_release(serial: str, as_json: bool) -> None:
    """Lift a certificate hold (suspension)."""
    with _session() as (settings, session, keystore):
        pki = load(session, keystore, pki_config(settings))
        record = release_hold(
            session,
            keystore,
            pki,
            serial,
            actor="eid cli",
            crl_validity=timedelta(hours=settings.crl.validity_hours),
        )
        data = _summary(record)
    _emit(data, as_json, lambda d: f"released {d['serial']}")


@main.group("audit")
def audit_() -> None:
    """The append-only audit log."""


@audit_.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def audit_verify(as_json: bool) -> None:
    """Recompute the hash chain; exit 1 if any entry was altered or removed."""
    with _session() as (_settings_, session, _keystore):
        report = audit.verify_chain(session)
    data = {
        "entries": report.entries,
        "intact": report.intact,
        "broken_at": report.broken_at,
        "reason": report.reason,
    }
    _emit(
        data,
        as_json,
        lambda d: (
            f"{d['entries']} entries, "
            + ("chain intact" if d["intact"] else f"BROKEN at entry {d['broken_at']}: {d['reason']}")
        ),
    )
    if not report.intact:
        sys.exit(1)


@main.group("config")
def config_() -> None:
    """Configuration."""


@config_.command("docs")
def config_docs() -> None:
    """Print the configuration reference (Markdown) generated from the settings."""
    from .config_docs import render

    click.echo(render(), nl=False)


@main.group()
def citizen() -> None:
    """The citizen registry (registration officers)."""


def _citizen_summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "country": row.country,
        "personal_code": row.personal_code,
        "given_name": row.given_name,
        "family_name": row.family_name,
        "state": row.state,
    }


@citizen.command("add")
@click.option("--id-code", required=True, help="Personal code, e.g. 38001085718.")
@click.option("--given-name", required=True)
@click.option("--family-name", required=True)
@click.option("--country", default="EE", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def citizen_add(id_code: str, given_name: str, family_name: str, country: str, as_json: bool) -> None:
    """Register a citizen and print their one-time activation code."""
    from identity import citizens

    with _session() as (_settings_, session, _keystore):
        registration = citizens.register(
            session,
            personal_code=id_code,
            given_name=given_name,
            family_name=family_name,
            country=country,
            actor="eid cli",
        )
        data = {
            "activation_code": registration.activation_code,
            "expires_at": as_utc(registration.expires_at).isoformat(),
            "citizen": _citizen_summary(registration.citizen),
        }
    _emit(
        data,
        as_json,
        lambda d: (
            f"registered {d['citizen']['given_name']} {d['citizen']['family_name']}\n"
            f"activation code: {d['activation_code']} (valid until {d['expires_at'][:16]}, single use)"
        ),
    )


@citizen.command("activation-code")
@click.option("--id-code", required=True)
@click.option("--country", default="EE", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def citizen_activation_code(id_code: str, country: str, as_json: bool) -> None:
    """A new activation code (e.g. after a lost device); earlier unused codes lapse."""
    from identity import citizens

    with _session() as (_settings_, session, _keystore):
        registration = citizens.issue_activation_code(
            session, citizens.find(session, id_code, country), actor="eid cli"
        )
        data = {
            "activation_code": registration.activation_code,
            "expires_at": as_utc(registration.expires_at).isoformat(),
        }
    _emit(
        data,
        as_json,
        lambda d: f"activation code: {d['activation_code']} (valid until {d['expires_at'][:16]})",
    )


@citizen.command("show")
@click.option("--id-code", required=True)
@click.option("--country", default="EE", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def citizen_show(id_code: str, country: str, as_json: bool) -> None:
    """A citizen and their certificates."""
    from identity import citizens
    from identity.enrolment import citizen_certificates

    with _session() as (_settings_, session, _keystore):
        row = citizens.find(session, id_code, country)
        data = _citizen_summary(row)
        data["certificates"] = [_summary(r) for r in citizen_certificates(session, row)]
    _emit(
        data,
        as_json,
        lambda d: (
            "\n".join(f"{k}: {v}" for k, v in d.items() if k != "certificates")
            + "".join(f"\n  {c['profile']} {c['serial']} {c['state']}" for c in d["certificates"])
        ),
    )


@citizen.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def citizen_list(as_json: bool) -> None:
    """All citizens, newest first."""
    from identity.models import Citizen

    with _session() as (_settings_, session, _keystore):
        rows = [_citizen_summary(r) for r in session.exec(select(Citizen).order_by(col(Citizen.id).desc()))]
    _emit(
        rows,
        as_json,
        lambda items: "\n".join(
            f"{r['country']}{r['personal_code']}  {r['state']:10} {r['family_name']}, {r['given_name']}"
            for r in items
        ),
    )


@citizen.command("set-state")
@click.option("--id-code", required=True)
@click.option("--country", default="EE", show_default=True)
@click.argument("state", type=click.Choice(["suspended", "active", "revoked"]))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def citizen_set_state(id_code: str, country: str, state: str, as_json: bool) -> None:
    """Suspend (certificates on hold), reactivate, or revoke a citizen (certificates revoked)."""
    from identity import citizens

    with _session() as (settings, session, keystore):
        pki = load(session, keystore, pki_config(settings))
        row = citizens.change_state(
            session,
            keystore,
            pki,
            citizens.find(session, id_code, country),
            citizens.CitizenState(state),
            actor="eid cli",
        )
        data = _citizen_summary(row)
    _emit(data, as_json, lambda d: f"{d['country']}{d['personal_code']} is now {d['state']}")


@main.group()
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
            _fail(f"{jwks_file} is not JSON")
        extra["token_endpoint_auth_method"] = "private_key_jwt"
    if id_token_alg:
        extra["id_token_signed_response_alg"] = id_token_alg
    with _session() as (_settings_, session, _keystore):
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
    _emit(data, as_json, lambda d: f"client_id: {d['client_id']}\nclient_secret: {d['client_secret']}")


@main.group("keys")
def keys_() -> None:
    """Token signing keys."""


@keys_.command("rotate")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def keys_rotate(as_json: bool) -> None:
    """New ID token signing keys (RS256, ES256); old ones stay published until their tokens expire."""
    from identity.oauth import keys as signing

    with _session() as (_settings_, session, keystore):
        created = [{"key_id": r.key_id, "alg": r.alg} for r in signing.rotate(session, keystore)]
    _emit(created, as_json, lambda items: "\n".join(f"{i['alg']}: {i['key_id']} (active)" for i in items))


@keys_.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def keys_list(as_json: bool) -> None:
    """Signing keys: which sign now, which are only published."""
    from identity.oauth import keys as signing
    from identity.oauth.models import SigningKeyRecord

    with _session() as (_settings_, session, _keystore):
        signing.ensure_registered(session)
        rows = [
            {
                "key_id": r.key_id,
                "alg": r.alg,
                "retire_at": as_utc(r.retire_at).isoformat() if r.retire_at else None,
            }
            for r in session.exec(select(SigningKeyRecord).order_by(col(SigningKeyRecord.created_at)))
        ]
    _emit(
        rows,
        as_json,
        lambda items: "\n".join(
            f"{i['alg']}  {i['key_id']}  {'active' if not i['retire_at'] else 'published until ' + i['retire_at'][:16]}"
            for i in items
        ),
    )


@main.group("documents")
def documents_() -> None:
    """Transient documents (signing)."""


@documents_.command("sweep")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def documents_sweep(as_json: bool) -> None:
    """Delete documents past their retention (run from cron, or leave it to the server)."""
    from . import signing_flow
    from .services import Services
    from .uploads import document_store

    services = Services.start(_settings())
    try:
        swept = signing_flow.sweep(services, document_store(services))
    finally:
        services.close()
    _emit({"sessions_swept": swept}, as_json, lambda d: f"{d['sessions_swept']} signing session(s) swept")


from .cli_seal import seal_group  # noqa: E402 - registered after main is defined

main.add_command(seal_group)

from .cli_qr import qr_group  # noqa: E402 - registered after main is defined

main.add_command(qr_group)

from .cli_verify import verify_command  # noqa: E402 - registered after main is defined

main.add_command(verify_command)
