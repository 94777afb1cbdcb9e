"""The state of a signature between ``async_prepare`` and ``async_finish``.

``Prepared`` holds everything the second step needs, so any instance of the service can
finish a signature another one prepared: store ``to_bytes()`` in the session's database
row, keep the prepared file on the shared blob store, and ``from_bytes()`` it back.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from asn1crypto import cms

from keys.keystore import HashAlgorithm

from .errors import PreparedDocumentMissing

FORMAT_VERSION = 1
"""Version of the ``to_bytes`` format; ``from_bytes`` refuses others."""


class Level(StrEnum):
    """PAdES baseline levels (ETSI EN 319 142-1)."""

    B_B = "B-B"
    """The signature alone."""
    B_T = "B-T"
    """Plus a signature time stamp from our TSA."""
    B_LT = "B-LT"
    """Plus OCSP responses and CRLs for the whole chain in the DSS."""
    B_LTA = "B-LTA"
    """Plus a document time stamp over all of it."""

    @property
    def has_timestamp(self) -> bool:
        return self is not Level.B_B

    @property
    def has_validation_data(self) -> bool:
        return self in (Level.B_LT, Level.B_LTA)


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """A document waiting for its signature value."""

    prepared_path: Path
    """The prepared PDF: the signature field and a zero-filled /Contents placeholder."""
    prepared_size: int
    """Size of the prepared file, checked before it is finished."""
    level: Level
    """The PAdES level to finish at."""
    field_name: str
    """Name of the signature field."""
    hash_algorithm: HashAlgorithm
    """Digest algorithm of the document, the signed attributes and the signature."""
    document_digest: bytes
    """Digest of the prepared file's /ByteRange (the messageDigest attribute)."""
    reserved_region_start: int
    """Offset of the ``<`` that opens the /Contents placeholder."""
    reserved_region_end: int
    """Offset just past the ``>`` that closes it."""
    signed_attributes: bytes
    """DER of the CMS signed attributes, encoded as the SET OF that is signed."""
    digest_to_sign: bytes
    """``hash_algorithm`` over ``signed_attributes``: what the signer's key signs as a digest."""
    signer_certificate: bytes
    """DER of the signer's certificate."""
    chain: tuple[bytes, ...]
    """DER of the certificates above it that go into the CMS (Citizen CA, maybe the root)."""
    signing_time: datetime
    """The claimed signing time (/M of the signature dictionary)."""

    def to_bytes(self) -> bytes:
        """Compact JSON (UTF-8) for a database column; binary values in base64."""
        b64 = _b64
        body: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "prepared_path": str(self.prepared_path),
            "prepared_size": self.prepared_size,
            "level": self.level.value,
            "field_name": self.field_name,
            "hash_algorithm": self.hash_algorithm.value,
            "document_digest": b64(self.document_digest),
            "reserved_region": [self.reserved_region_start, self.reserved_region_end],
            "signed_attributes": b64(self.signed_attributes),
            "digest_to_sign": b64(self.digest_to_sign),
            "signer_certificate": b64(self.signer_certificate),
            "chain": [b64(der) for der in self.chain],
            "signing_time": self.signing_time.isoformat(),
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Prepared:
        """Load what ``to_bytes`` wrote; ``PreparedDocumentMissing`` if it is not that."""
        try:
            body = json.loads(data)
            if body.get("v") != FORMAT_VERSION:
                raise ValueError(f"format version {body.get('v')!r}")
            start, end = body["reserved_region"]
            prepared = cls(
                prepared_path=Path(body["prepared_path"]),
                prepared_size=int(body["prepared_size"]),
                level=Level(body["level"]),
                field_name=str(body["field_name"]),
                hash_algorithm=HashAlgorithm(body["hash_algorithm"]),
                document_digest=_unb64(body["document_digest"]),
                reserved_region_start=int(start),
                reserved_region_end=int(end),
                signed_attributes=_unb64(body["signed_attributes"]),
                digest_to_sign=_unb64(body["digest_to_sign"]),
                signer_certificate=_unb64(body["signer_certificate"]),
                chain=tuple(_unb64(der) for der in body["chain"]),
                signing_time=datetime.fromisoformat(body["signing_time"]),
            )
            prepared.check()
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PreparedDocumentMissing("the saved signing state is unreadable") from exc
        return prepared

    def check(self) -> None:
        """The values agree with each other: the signed attributes carry the document
        digest and hash to ``digest_to_sign``. ``ValueError`` if not."""
        digest = hashlib.new(self.hash_algorithm.value, self.signed_attributes).digest()
        if digest != self.digest_to_sign:
            raise ValueError("digest_to_sign does not match the signed attributes")
        attributes = cms.CMSAttributes.load(self.signed_attributes, strict=True)
        values = {attr["type"].native: attr["values"].native for attr in attributes}
        if values.get("message_digest") != [self.document_digest]:
            raise ValueError("the signed attributes do not carry the document digest")
        if not 0 < self.reserved_region_start < self.reserved_region_end <= self.prepared_size:
            raise ValueError("the reserved region is outside the prepared file")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _unb64(value: str) -> bytes:
    return base64.b64decode(value.encode("ascii"), validate=True)
