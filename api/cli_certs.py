"""``eid cert``: list, show, revoke and release the certificates the service's CAs issued."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click
from asn1crypto import pem, x509
from sqlmodel import col, select

from keys.ca import RevocationReason, find
from keys.models import CertificateRecord, as_utc
from keys.pki import load
from keys.revocation import release_hold, revoke_certificate

from .cli_common import emit, fail, friendly_errors, service_session
from .services import pki_config


@click.group()
def cert() -> None:
    """Certificates issued by the service's CAs."""


def certificate_summary(record: CertificateRecord) -> dict[str, Any]:
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
    with service_session() as (_settings_, session, _keystore):
        query = select(CertificateRecord).order_by(col(CertificateRecord.id).desc())
        if profile:
            query = query.where(CertificateRecord.profile == profile)
        if state:
            query = query.where(CertificateRecord.state == state)
        rows = [certificate_summary(r) for r in session.exec(query)]

    def text(items: list[dict[str, Any]]) -> str:
        lines = [f"{'SERIAL':34} {'PROFILE':15} {'STATE':8} {'NOT AFTER':10} SUBJECT"]
        lines += [
            f"{r['serial']:34} {r['profile']:15} {r['state']:8} {r['not_after'][:10]:10} {r['subject']}"
            for r in items
        ]
        return "\n".join(lines)

    emit(rows, as_json, text)


@cert.command("show")
@click.argument("serial")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--pem", "as_pem", is_flag=True, help="Print the certificate in PEM.")
@friendly_errors
def cert_show(serial: str, as_json: bool, as_pem: bool) -> None:
    """Show one certificate by serial (hex)."""
    with service_session() as (_settings_, session, _keystore):
        record = find(session, serial)
    if as_pem:
        if record.der is None:
            fail(f"certificate {record.serial} was reserved but never issued")
        assert record.der is not None
        click.echo(pem.armor("CERTIFICATE", record.der).decode("ascii"), nl=False)
        return
    data = certificate_summary(record)
    if record.der is not None:
        parsed = x509.Certificate.load(record.der)
        data["key_usage"] = sorted(parsed.key_usage_value.native) if parsed.key_usage_value else []
        data["extended_key_usage"] = (
            parsed.extended_key_usage_value.native if parsed.extended_key_usage_value else []
        )
    emit(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


_REASONS = [reason.value.replace("_", "-") for reason in RevocationReason]


@cert.command("revoke")
@click.argument("serial")
@click.option("--reason", type=click.Choice(_REASONS), default="unspecified", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def cert_revoke(serial: str, reason: str, as_json: bool) -> None:
    """Revoke a certificate; OCSP and the CRL show it at once."""
    with service_session() as (settings, session, keystore):
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
        data = certificate_summary(record)
    emit(data, as_json, lambda d: f"revoked {d['serial']} ({d['revocation_reason']})")


@cert.command("release")
@click.argument("serial")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def cert_release(serial: str, as_json: bool) -> None:
    """Lift a certificate hold (suspension)."""
    with service_session() as (settings, session, keystore):
        pki = load(session, keystore, pki_config(settings))
        record = release_hold(
            session,
            keystore,
            pki,
            serial,
            actor="eid cli",
            crl_validity=timedelta(hours=settings.crl.validity_hours),
        )
        data = certificate_summary(record)
    emit(data, as_json, lambda d: f"released {d['serial']}")
