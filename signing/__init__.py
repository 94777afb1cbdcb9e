"""signing: PAdES signatures made in two steps, with the signer's key outside the service.

``async_prepare`` writes the prepared update (the uploaded document stays where it is,
unchanged, until the signature is finished) and returns a ``Prepared`` whose
``digest_to_sign`` the citizen's app signs as a digest; ``async_finish`` checks that
signature and completes the requested level (B-B, B-T, B-LT, B-LTA) with our own TSA,
OCSP responder and CRLs, asked in process. Nothing here fetches a URL. A caller that
owns the uploaded file alone passes ``consume_source=True`` to both: the upload itself
then becomes the signed file, without a copy.
"""

from ._document import DocumentInfo, check_document
from ._timestamper import InProcessTimeStamper, TsaCallable
from .errors import (
    InvalidDocument,
    InvalidSigningRequest,
    PreparedDocumentMissing,
    SignatureRejected,
    SignerCertificateRejected,
    SigningError,
    TrustServiceUnavailable,
)
from .pades import async_finish, async_prepare
from .prepared import Level, Prepared
from .seal import async_sign_with_keystore
from .stamp import StampPosition, StampSpec
from .validation import InProcessRevocation, ValidationData, ValidationSource

__all__ = [
    "DocumentInfo",
    "InProcessRevocation",
    "InProcessTimeStamper",
    "InvalidDocument",
    "InvalidSigningRequest",
    "Level",
    "Prepared",
    "PreparedDocumentMissing",
    "SignatureRejected",
    "SignerCertificateRejected",
    "SigningError",
    "StampPosition",
    "StampSpec",
    "TrustServiceUnavailable",
    "TsaCallable",
    "ValidationData",
    "ValidationSource",
    "async_finish",
    "async_prepare",
    "async_sign_with_keystore",
    "check_document",
]
