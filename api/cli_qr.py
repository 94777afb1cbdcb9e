"""``eid qr``: show and revoke documents that carry a QR token.

Revocation is what an issuer does when a sealed certificate must no longer be relied
on: the QR page and the status API show it at once. It cannot be undone.
"""

from __future__ import annotations

from typing import Any

import click

from verification import DocumentStatus, document_status, revoke_document

from .cli_common import emit, friendly_errors, service_session


def _summary(status: DocumentStatus) -> dict[str, Any]:
    return {
        "document_id": status.document_id,
        "type": status.kind.value,
        "state": status.state.value,
        "display_name": status.display_name,
        "organisation": status.organisation,
        "title": status.title,
        "issued_at": status.issued_at.isoformat(),
        "document_sha256": status.document_sha256.hex(),
        "document_length": status.document_length,
        "revoked_at": status.revoked_at.isoformat() if status.revoked_at else None,
        "revocation_reason": status.revocation_reason,
    }


def _text(data: dict[str, Any]) -> str:
    return "\n".join(f"{key}: {value}" for key, value in data.items() if value is not None)


def _qr() -> None:
    """Documents with a QR token: status and revocation."""


# Annotated, not decorated: api/cli.py imports this name in an import cycle, where mypy
# cannot infer the type a decorator gives.
qr_group: click.Group = click.group("qr")(_qr)


@qr_group.command("show")
@click.argument("document_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def qr_show(document_id: str, as_json: bool) -> None:
    """Show the status of a document by its id (32 hex digits)."""
    with service_session() as (_settings, session, _keystore):
        data = _summary(document_status(session, document_id))
    emit(data, as_json, _text)


@qr_group.command("revoke")
@click.argument("document_id")
@click.option("--reason", required=True, help="Why, in words a verifier will read on the QR page.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def qr_revoke(document_id: str, reason: str, as_json: bool) -> None:
    """Revoke a signed or sealed document: its QR page shows it as revoked from now on."""
    with service_session() as (_settings, session, _keystore):
        status = revoke_document(session, document_id, reason, actor="eid cli")
        session.commit()
        data = _summary(status)
    emit(data, as_json, lambda d: f"revoked {d['document_id']} ({d['revocation_reason']})")
