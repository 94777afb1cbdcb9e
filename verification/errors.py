"""Errors of ``verification/``.

Every class says which HTTP status ``api/`` answers with and whether its message may be
shown. Messages never contain key material or personal codes; a token is hostile input,
so a message names what is wrong with it, never echoes it.
"""

from __future__ import annotations

from keys.errors import ServiceError


class VerificationError(ServiceError):
    """Base of the errors raised by ``verification/``."""

    slug = "verification-error"
    title = "Verification error"


class InvalidQrToken(VerificationError):
    """A QR token that cannot be accepted; the subclasses say why."""

    status = 400
    public = True
    slug = "invalid-qr-token"
    title = "Invalid QR token"


class MalformedQrToken(InvalidQrToken):
    """Not a token at all: wrong characters, wrong length, not CBOR, not a COSE_Sign1."""

    slug = "malformed-qr-token"
    title = "Malformed QR token"


class UnsupportedQrAlgorithm(InvalidQrToken):
    """The token names an algorithm other than ES256 (the only one we accept)."""

    status = 422
    slug = "unsupported-qr-algorithm"
    title = "Unsupported QR token algorithm"


class UnknownQrKey(InvalidQrToken):
    """The token's ``kid`` is none of our QR seal keys (or the key was revoked)."""

    status = 422
    slug = "unknown-qr-key"
    title = "Unknown QR seal key"


class QrSignatureInvalid(InvalidQrToken):
    """The seal over the token does not verify: it was altered or not made by us."""

    status = 422
    slug = "qr-signature-invalid"
    title = "QR token signature invalid"


class InvalidQrClaims(InvalidQrToken):
    """The signature holds, but the payload is not the shape we issue."""

    status = 422
    slug = "invalid-qr-claims"
    title = "Invalid QR token claims"


class InvalidQrInput(VerificationError):
    """Values given to ``issue_token`` or ``record_document`` that we cannot seal."""

    status = 400
    public = True
    slug = "invalid-qr-input"
    title = "Invalid QR input"


class QrDocumentNotFound(VerificationError):
    """No document with this id was recorded here."""

    status = 404
    public = True
    slug = "qr-document-not-found"
    title = "Document not found"


class QrDocumentAlreadyRevoked(VerificationError):
    """A revocation of a document that is revoked already."""

    status = 409
    public = True
    slug = "qr-document-revoked"
    title = "Document already revoked"


class QrImageRejected(VerificationError):
    """An uploaded picture that is not a usable image, or holds no QR code of ours."""

    status = 422
    public = True
    slug = "qr-image-rejected"
    title = "QR image rejected"


class QrImageTooLarge(QrImageRejected):
    """An uploaded picture over the byte or pixel limit (decompression bombs included)."""

    status = 413
    slug = "qr-image-too-large"
    title = "QR image too large"
