"""Errors of ``signing/``.

Every class says which HTTP status ``api/`` answers with and whether its message may be
shown. Messages of public errors never contain document content or key material.
"""

from __future__ import annotations

from keys.errors import ServiceError


class SigningError(ServiceError):
    """Base of the errors raised by ``signing/``."""

    slug = "signing-error"
    title = "Signing error"


class InvalidDocument(SigningError):
    """Not a PDF, truncated or damaged, encrypted, or locked against further signatures."""

    status = 422
    public = True
    slug = "invalid-document"
    title = "Invalid document"


class InvalidSigningRequest(SigningError):
    """A parameter the caller chose is unusable: page, field name, level, certificate."""

    status = 400
    public = True
    slug = "invalid-signing-request"
    title = "Invalid signing request"


class SignatureRejected(SigningError):
    """The signature value does not verify with the signer's certificate over the hash."""

    status = 409
    public = True
    slug = "signature-rejected"
    title = "Signature rejected"


class SignerCertificateRejected(SigningError):
    """The signer's certificate is revoked, expired, untrusted or not for signing."""

    status = 409
    public = True
    slug = "signer-certificate-rejected"
    title = "Signer certificate rejected"


class PreparedDocumentMissing(SigningError):
    """The prepared file of a signing session is gone or is not the one prepared."""

    status = 410
    public = True
    slug = "prepared-document-missing"
    title = "Prepared document missing"


class TrustServiceUnavailable(SigningError):
    """The time-stamping authority or the revocation sources did not give what was needed."""

    status = 503
    public = True
    slug = "trust-service-unavailable"
    title = "Trust service unavailable"
