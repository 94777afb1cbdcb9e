"""What a logged-in citizen may do with their own account: see and stop certificates."""

from __future__ import annotations

from sqlmodel import Session

from keys.ca import RevocationReason
from keys.keystore import KeyStore
from keys.models import CertificateRecord
from keys.pki import Pki
from keys.revocation import release_hold, revoke_certificate

from . import citizens
from .enrolment import citizen_certificates
from .errors import CitizenNotFound
from .models import Citizen

ACTIONS = {
    "suspend": RevocationReason.CERTIFICATE_HOLD,
    "revoke": RevocationReason.KEY_COMPROMISE,
}


def own_certificate(session: Session, citizen: Citizen, serial: str) -> CertificateRecord:
    for record in citizen_certificates(session, citizen):
        if record.serial == serial.lower():
            return record
    raise CitizenNotFound("no such certificate among yours")


def change_certificate(
    session: Session, keystore: KeyStore, pki: Pki, citizen: Citizen, serial: str, action: str
) -> CertificateRecord:
    """Suspend, resume or revoke one of the citizen's own certificates. Commits."""
    record = own_certificate(session, citizen, serial)
    assert citizen.id is not None
    if action == "resume":
        changed = release_hold(session, keystore, pki, record.serial, actor=f"citizen {citizen.public_id}")
    else:
        changed = revoke_certificate(
            session,
            keystore,
            pki,
            record.serial,
            reason=ACTIONS[action],
            actor=f"citizen {citizen.public_id}",
        )
    label = "authentication" if record.profile == "citizen-auth" else "signing"
    citizens.note_activity(
        session, citizen.id, f"certificate.{action}", f"{label.capitalize()} certificate {action}d"
    )
    session.commit()
    return changed
