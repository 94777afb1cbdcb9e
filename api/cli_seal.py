"""``eid seal``: organisations' e-seals for relying parties (EN 319 412-3 certificates)."""

from __future__ import annotations

import click
from asn1crypto import x509
from sqlmodel import col, select

from keys.models import CertificateRecord, as_utc
from keys.pki import load
from keys.profiles import OrganisationSubject, Profile
from keys.seals import issue_seal_certificate

from .cli_common import emit, friendly_errors, service_session
from .services import pki_config


@click.group("seal")
def seal_group() -> None:
    """Organisations' e-seals (keys in the key store, certificates from our CA)."""


@seal_group.command("add")
@click.option("--client", "client_id", required=True, help="client_id of the relying party that may seal.")
@click.option("--organisation", required=True, help="Registered name, e.g. 'Rahvastikuregister'.")
@click.option("--org-id", required=True, help="Legal person identifier, e.g. NTREE-70000310.")
@click.option("--country", default="EE", show_default=True, help="Country of the registry.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def seal_add(client_id: str, organisation: str, org_id: str, country: str, as_json: bool) -> None:
    """Create a seal key in the key store and certify it for CLIENT (give it the seal scope)."""
    from identity.oauth.clients import find as find_client

    with service_session() as (settings, session, keystore):
        if find_client(session, client_id) is None:
            raise click.ClickException(
                f"no client {client_id}: register it with `eid client add --scope seal`"
            )
        pki = load(session, keystore, pki_config(settings))
        record = issue_seal_certificate(
            session,
            keystore,
            pki,
            subject=OrganisationSubject(country=country, name=organisation, identifier=org_id),
            client_id=client_id,
            actor="eid cli",
        )
        data = _describe(record)
    emit(
        data,
        as_json,
        lambda d: f"seal {d['serial']} for {d['organisation']} ({d['identifier']}), key {d['key_id']}",
    )


@seal_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def seal_list(as_json: bool) -> None:
    """Every e-seal certificate, newest first."""
    with service_session() as (_settings, session, _keystore):
        rows = session.exec(
            select(CertificateRecord)
            .where(CertificateRecord.profile == Profile.ORG_SEAL.value)
            .order_by(col(CertificateRecord.id).desc())
        ).all()
        data = [_describe(row) for row in rows if row.der]
    emit(
        data,
        as_json,
        lambda items: (
            "\n".join(f"{d['serial']}  {d['state']:8} {d['organisation']} ({d['client']})" for d in items)
            or "no seals"
        ),
    )


def _describe(record: CertificateRecord) -> dict[str, object]:
    assert record.der is not None
    subject = x509.Certificate.load(record.der).subject.native
    return {
        "serial": record.serial,
        "state": record.state,
        "organisation": subject.get("organization_name"),
        "identifier": subject.get("organization_identifier"),
        "client": (record.owner or "").removeprefix("client:"),
        "key_id": record.key_id,
        "not_after": as_utc(record.not_after).isoformat(),
    }
