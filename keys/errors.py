"""The error hierarchy shared by every package.

Each error class says which HTTP status it maps to and whether its message may be
shown to the caller. ``api/`` turns them into RFC 9457 problem details in one
handler; domain code never raises HTTP exceptions itself.
"""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    """Base of every error a public function of this service raises on purpose."""

    status: ClassVar[int] = 500
    """HTTP status the API answers with."""
    public: ClassVar[bool] = False
    """Whether the message is safe to show to the caller."""
    slug: ClassVar[str] = "internal-error"
    """Last part of the problem ``type`` URI."""
    title: ClassVar[str] = "Internal error"
    """Short, fixed summary of the problem type."""


class KeyServiceError(ServiceError):
    """Base of the errors raised by ``keys/`` (key store, CA, OCSP, CRL, TSA)."""

    slug = "key-service-error"
    title = "Key service error"


class KeyStoreUnavailable(KeyServiceError):
    """The key store cannot be opened: wrong passphrase, missing token or module."""

    status = 503
    public = True
    slug = "key-store-unavailable"
    title = "Key store unavailable"


class KeyNotFound(KeyServiceError):
    status = 404
    public = True
    slug = "key-not-found"
    title = "Key not found"


class KeyAlreadyExists(KeyServiceError):
    status = 409
    public = True
    slug = "key-exists"
    title = "Key already exists"


class InvalidKeyRequest(KeyServiceError):
    """A caller asked for something the key store cannot do (bad id, algorithm)."""

    status = 400
    public = True
    slug = "invalid-key-request"
    title = "Invalid key request"


class CertificateNotFound(KeyServiceError):
    status = 404
    public = True
    slug = "certificate-not-found"
    title = "Certificate not found"


class CertificateRequestRejected(KeyServiceError):
    """An issuance request failed a check (proof of possession, key type, subject)."""

    status = 400
    public = True
    slug = "certificate-request-rejected"
    title = "Certificate request rejected"


class RevocationRejected(KeyServiceError):
    """A revocation that cannot be done (already revoked, not a certificate of ours)."""

    status = 409
    public = True
    slug = "revocation-rejected"
    title = "Revocation rejected"


class PkiNotInitialised(KeyServiceError):
    """The PKI has not been created yet: run ``eid init``."""

    status = 503
    public = True
    slug = "pki-not-initialised"
    title = "PKI not initialised"
