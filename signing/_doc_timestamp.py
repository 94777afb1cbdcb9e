# pyHanko's writer and placeholders have no annotations; they are used here as its signer does.
# mypy: disable-error-code="no-untyped-call"
"""The DSS and the document time stamp of B-LTA, hashed from the kept state.

pyHanko's ``PdfTimeStamper`` writes the time stamp's revision and then reads the whole
output back to hash it: for a 100 MB document a second pass over 100 MB that the
prepare step has already hashed. Here pyHanko still builds the revision's objects with
its incremental writer (the DSS with the validation data, as its post-signing step
does, and beside it a new invisible field whose value is a /DocTimeStamp dictionary,
/SubFilter /ETSI.RFC3161, with its /ByteRange and an empty /Contents, as its
``PdfTimeStamper`` does), written in place in one revision, as before. The digest is
ours: the hash state after the uploaded document (``_prefix``), continued over the few
kilobytes after it (the signature's update and this revision); without a state
(another instance prepared it, a restart) the whole file is hashed. The RFC 3161 token
then fills the placeholder in place.

One writer for both parts also means the document's cross-reference sections are
parsed once here, not once for the DSS and once for the time stamp (~12 ms at 1 000
pages).
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import SigFieldSpec
from pyhanko.sign.signers import constants
from pyhanko.sign.signers.cms_embedder import PdfCMSEmbedder, SigObjSetup
from pyhanko.sign.signers.pdf_byterange import DocumentTimestamp
from pyhanko.sign.timestamps import TimeStamper

from ._streams import CHUNK_SIZE
from .errors import SigningError

TOKEN_ALLOWANCE = 8192
"""Bytes kept for the RFC 3161 token when no other token of the TSA is known."""

AddDss = Callable[[IncrementalPdfFileWriter], object]
"""Puts the DSS into the writer (``DocumentSecurityStore.supply_dss_in_writer``)."""


def reserved_digits(token_size_hint: int) -> int:
    """Hex digits of /Contents for a token like one of ``token_size_hint`` bytes (the
    signature's time stamp, from the same TSA): half as much again, as pyHanko keeps
    over its test token."""
    size = token_size_hint * 3 // 2 + 64 if token_size_hint else TOKEN_ALLOWANCE
    return 2 * size


@dataclass(frozen=True, slots=True, kw_only=True)
class _Placed:
    digest: bytes
    start: int
    end: int


async def async_add_document_timestamp(
    stream: IO[bytes],
    *,
    add_dss: AddDss,
    timestamper: TimeStamper,
    algorithm: str,
    prefix: hashlib._Hash | None,
    prefix_size: int,
    token_size_hint: int = 0,
) -> None:
    """Append the DSS (``add_dss``) and a document time stamp, in one revision, to the
    PDF in ``stream`` (read-write). ``prefix`` is the ``algorithm`` hash state after the
    first ``prefix_size`` bytes of it, if known; ``token_size_hint`` the size of
    another token of the same TSA (``reserved_digits``)."""
    reserved = reserved_digits(token_size_hint)
    placed = await asyncio.to_thread(_place, stream, add_dss, algorithm, prefix, prefix_size, reserved)
    token = await timestamper.async_timestamp(placed.digest, algorithm)
    contents = binascii.hexlify(token.dump())
    if len(contents) > placed.end - placed.start - 2:
        raise SigningError("the document time stamp is larger than the space kept for it")
    stream.seek(placed.start + 1)
    stream.write(contents)
    stream.flush()


def _place(
    stream: IO[bytes],
    add_dss: AddDss,
    algorithm: str,
    prefix: hashlib._Hash | None,
    prefix_size: int,
    reserved: int,
) -> _Placed:
    """Write the revision with an empty /Contents at the end of ``stream``; its digest."""
    stream.flush()
    writer = IncrementalPdfFileWriter(stream, strict=True)
    add_dss(writer)
    # As pyHanko's ``PdfTimeStamper``: PDF 1.7 with the ESIC extension for PAdES.
    writer.ensure_output_version(version=(1, 7))
    if writer.output_version < (2, 0):
        writer.register_extension(constants.ESIC_EXTENSION_1)
    name = f"Timestamp-{uuid.uuid4()}"
    placeholder = DocumentTimestamp(bytes_reserved=reserved)
    embedder = PdfCMSEmbedder(
        new_field_spec=SigFieldSpec(sig_field_name=name, readable_field_name="Timestamp")
    ).write_cms(field_name=name, writer=writer, existing_fields_only=False)
    next(embedder)
    embedder.send(SigObjSetup(sig_placeholder=placeholder))
    embedder.close()
    # What ``PdfByteRangeDigest.fill`` does, without its hash over the whole file.
    writer.digest_aware_write = True
    writer.write_in_place()
    eof = stream.tell()
    start, end = placeholder.contents.offsets
    placeholder.byte_range.fill_offsets(stream, start, end, eof)
    if prefix is not None and prefix_size <= start:
        digest = prefix
        _hash(stream, digest, prefix_size, start)
    else:
        digest = hashlib.new(algorithm)
        _hash(stream, digest, 0, start)
    _hash(stream, digest, end, eof)
    return _Placed(digest=digest.digest(), start=start, end=end)


def _hash(stream: IO[bytes], digest: hashlib._Hash, begin: int, stop: int) -> None:
    """Add ``stream``'s bytes from ``begin`` to ``stop`` to ``digest``."""
    stream.seek(begin)
    while begin < stop:
        chunk = stream.read(min(CHUNK_SIZE, stop - begin))
        if not chunk:
            raise OSError("the signed document is shorter than written")
        digest.update(chunk)
        begin += len(chunk)
