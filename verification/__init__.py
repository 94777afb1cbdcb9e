"""verification: signature validation reports, the QR token format and its checks.

Nothing here imports ``signing/``, ``identity/`` or ``api/``.
"""

from ._report_pdf import render_report_pdf
from .errors import (
    InvalidQrClaims,
    InvalidQrInput,
    InvalidQrToken,
    MalformedQrToken,
    QrDocumentAlreadyRevoked,
    QrDocumentNotFound,
    QrImageRejected,
    QrImageTooLarge,
    QrSignatureInvalid,
    UnknownQrKey,
    UnsupportedQrAlgorithm,
    VerificationError,
)
from .pdf import POLICY, RevocationData, RevocationProvider, UnreadableDocument, async_validate_document
from .qr import DocumentKind, QrClaims, cose_budget, document_hash, issue_token, qr_url, read_token
from .qr_image import find_token
from .qr_keys import QrKey, QrKeys, kid_of, load_qr_keys
from .qr_status import (
    DocumentState,
    DocumentStatus,
    document_status,
    parse_document_id,
    record_document,
    revoke_document,
)
from .report import (
    CertificateInfo,
    Check,
    Coverage,
    DocumentReport,
    Indication,
    Revision,
    RevocationInfo,
    SignatureReport,
)
from .trust import TrustConfig, TrustConfigurationError, build_trust
from .worker import Limits, WorkerPool

__all__ = [
    "CertificateInfo",
    "Check",
    "Coverage",
    "DocumentKind",
    "DocumentReport",
    "DocumentState",
    "DocumentStatus",
    "Indication",
    "InvalidQrClaims",
    "InvalidQrInput",
    "InvalidQrToken",
    "Limits",
    "MalformedQrToken",
    "POLICY",
    "QrClaims",
    "QrDocumentAlreadyRevoked",
    "QrDocumentNotFound",
    "QrImageRejected",
    "QrImageTooLarge",
    "QrKey",
    "QrKeys",
    "QrSignatureInvalid",
    "Revision",
    "RevocationData",
    "RevocationInfo",
    "RevocationProvider",
    "SignatureReport",
    "TrustConfig",
    "TrustConfigurationError",
    "UnknownQrKey",
    "UnreadableDocument",
    "UnsupportedQrAlgorithm",
    "VerificationError",
    "WorkerPool",
    "async_validate_document",
    "build_trust",
    "cose_budget",
    "document_hash",
    "document_status",
    "find_token",
    "issue_token",
    "kid_of",
    "load_qr_keys",
    "parse_document_id",
    "qr_url",
    "read_token",
    "record_document",
    "render_report_pdf",
    "revoke_document",
]
