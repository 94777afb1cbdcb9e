"""The state of a signature between ``async_prepare`` and ``async_finish``.

``Prepared`` holds everything the second step needs, so any instance of the service can
finish a signature another one prepared: store ``to_bytes()`` in the session's database
row, keep the prepared file on the shared blob store, and ``from_bytes()`` it back.

Since format version 2 the prepared file holds only the incremental update, and the
document to sign (``source_path``, the uploaded blob) must stay where it is, unchanged,
until the signature is finished. Version 1 states (the whole document in the prepared
file) are still read and finished.
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

FORMAT_VERSION = 2
"""Version of the ``to_bytes`` format written; ``from_bytes`` reads ``READABLE_VERSIONS``."""
READABLE_VERSIONS = (1, 2)


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
    """The prepared file: the incremental update with the signature field and a
    zero-filled /Contents placeholder, after ``source_path`` (the whole prepared PDF
    if ``source_path`` is None, as in format version 1)."""
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
    source_path: Path | None = None
    """The document the update continues; it must not change until finished."""
    source_size: int = 0
    """Its size (0 without ``source_path``); offsets above count from its start."""
    source_mtime_ns: int = 0
    """Its modification time, checked with the size before it is finished."""

    @property
    def document_size(self) -> int:
        """Size of the whole prepared document: the source, then the update."""
        return self.source_size + self.prepared_size

    @property
    def parts(self) -> tuple[Path, ...]:
        """The files that, one after the other, make up the prepared document."""
        return (self.prepared_path,) if self.source_path is None else (self.source_path, self.prepared_path)

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
        if self.source_path is not None:
            body["source"] = [str(self.source_path), self.source_size, self.source_mtime_ns]
        else:
            body["v"] = 1
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Prepared:
        """Load what ``to_bytes`` wrote; ``PreparedDocumentMissing`` if it is not that."""
        try:
            body = json.loads(data)
            version = body.get("v")
            if version not in READABLE_VERSIONS:
                raise ValueError(f"format version {version!r}")
            start, end = body["reserved_region"]
            source_path, source_size, source_mtime_ns = None, 0, 0
            if version >= 2:
                path, size, mtime_ns = body["source"]
                source_path, source_size, source_mtime_ns = Path(path), int(size), int(mtime_ns)
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
                source_path=source_path,
                source_size=source_size,
                source_mtime_ns=source_mtime_ns,
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
        # Only the message digest is read: a full ``.native`` of the signing-certificate
        # attribute costs about a millisecond, and those bytes are signed as they are.
        digests = [attr["values"].native for attr in attributes if attr["type"].native == "message_digest"]
        if digests != [[self.document_digest]]:
            raise ValueError("the signed attributes do not carry the document digest")
        if not self.source_size < self.reserved_region_start < self.reserved_region_end <= self.document_size:
            raise ValueError("the reserved region is outside the prepared file")
        if (self.source_path is None) != (self.source_size == 0):
            raise ValueError("a source needs its size, and a size its source")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _unb64(value: str) -> bytes:
    return base64.b64decode(value.encode("ascii"), validate=True)
