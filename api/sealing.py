"""Sealing a PDF with an organisation's e-seal, for the relying party that owns the seal.

No person approves: the key is the service's (``keys.seals``), so the document is
prepared, signed in the key store and finished in one request, at the requested level
with our own TSA, OCSP responder and CRLs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from asn1crypto import x509
from starlette.concurrency import run_in_threadpool

from identity.errors import IdentityError
from keys.blobs import BlobStore
from keys.models import utcnow
from keys.seals import current_seal
from signing import InProcessTimeStamper, Level, StampSpec, async_sign_with_keystore
from signing.models import SealedDocument

from . import idempotency, qr_stamps
from .services import Services
from .signing_flow import revocation_source


class NoSealCertificate(IdentityError):
    status = 409
    public = True
    slug = "no-seal-certificate"
    title = "No valid e-seal certificate"


@dataclass(frozen=True, slots=True, kw_only=True)
class SealRequest:
    document_name: str
    """File name the sealed PDF is offered under."""
    title: str | None
    """Document title for the QR record (e.g. ``Certificate of residence``)."""
    level: Level
    """PAdES level."""
    reason: str | None
    """Reason in the signature dictionary and on the stamp."""
    location: str | None
    """Location in the signature dictionary and on the stamp."""
    visible: bool
    """A visible stamp with a QR code (else an invisible seal)."""


async def seal(
    services: Services,
    store: BlobStore,
    *,
    client_id: str,
    source_blob: str,
    source_sha256: bytes,
    request: SealRequest,
    idempotency_key: tuple[str, str] | None = None,
) -> SealedDocument:
    """Seal ``source_blob`` with ``client_id``'s e-seal; the source is left to the caller.
    Database work runs in the thread pool (a write may wait for a lock)."""

    def seal_key() -> tuple[bytes, str, str]:
        with services.session() as db:
            record = current_seal(db, client_id)
            if record is None or record.der is None or record.key_id is None:
                raise NoSealCertificate(
                    "this client has no valid e-seal certificate: ask the operator for one"
                )
            return record.der, record.key_id, record.serial

    der, key_id, serial = await run_in_threadpool(seal_key)
    organisation = _organisation(der)
    stamp = None
    qr_document_id = None
    if request.visible:
        issued = qr_stamps.seal_token(
            services,
            document_sha256=source_sha256,
            document_length=store.path(source_blob).stat().st_size,
            organisation=organisation,
            title=request.title or request.document_name,
        )
        qr_document_id = issued.document_id_hex
        stamp = StampSpec(signer_name=organisation, heading="Sealed by", qr_url=issued.url)
    out = store.path(store.new_id())
    await async_sign_with_keystore(
        store.path(source_blob),
        out,
        workdir=store.directory,
        keystore=services.keystore,
        key_id=key_id,
        certificate=der,
        chain=[services.pki.citizen_ca.certificate.dump()],
        timestamper=InProcessTimeStamper(lambda req: services.tsa.respond(req, now=utcnow()).der),
        validation=revocation_source(services),
        level=request.level,
        stamp=stamp,
        reason=request.reason,
        location=request.location,
    )

    def record() -> SealedDocument:
        with services.session() as db:
            row = SealedDocument(
                public_id=f"sl-{secrets.token_urlsafe(12)}",
                client_id=client_id,
                document_name=request.document_name[:200],
                level=request.level.value,
                certificate_serial=serial,
                qr_document_id=qr_document_id,
                signed_blob=out.name,
                delete_after=utcnow() + timedelta(hours=services.settings.limits.document_retention_hours),
            )
            db.add(row)
            if qr_document_id is not None:
                qr_stamps.record(db, issued)
            if idempotency_key is not None:
                idempotency.complete(db, *idempotency_key, row.public_id)
            db.commit()
            db.refresh(row)
            return row

    try:
        return await run_in_threadpool(record)
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def _organisation(der: bytes) -> str:
    subject = x509.Certificate.load(der).subject.native
    return str(subject.get("organization_name") or subject.get("common_name") or "Organisation")
