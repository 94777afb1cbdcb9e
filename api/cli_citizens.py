"""``eid citizen``: the citizen registry, for registration officers."""

from __future__ import annotations

from typing import Any

import click
from sqlmodel import col, select

from keys.models import as_utc
from keys.pki import load

from .cli_certs import certificate_summary
from .cli_common import emit, friendly_errors, service_session
from .services import pki_config


@click.group()
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

    with service_session() as (_settings_, session, _keystore):
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
    emit(
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

    with service_session() as (_settings_, session, _keystore):
        registration = citizens.issue_activation_code(
            session, citizens.find(session, id_code, country), actor="eid cli"
        )
        data = {
            "activation_code": registration.activation_code,
            "expires_at": as_utc(registration.expires_at).isoformat(),
        }
    emit(
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

    with service_session() as (_settings_, session, _keystore):
        row = citizens.find(session, id_code, country)
        data = _citizen_summary(row)
        data["certificates"] = [certificate_summary(r) for r in citizen_certificates(session, row)]
    emit(
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

    with service_session() as (_settings_, session, _keystore):
        rows = [_citizen_summary(r) for r in session.exec(select(Citizen).order_by(col(Citizen.id).desc()))]
    emit(
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

    with service_session() as (settings, session, keystore):
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
    emit(data, as_json, lambda d: f"{d['country']}{d['personal_code']} is now {d['state']}")
