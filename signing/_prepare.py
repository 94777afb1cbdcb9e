"""The blocking part of ``async_prepare``: parse, add the field, write the update, hash.

An invisible field gets its update from ``_update`` (a few objects written directly);
a visible stamp, a field that is already there, or a document of an unusual shape goes
through pyHanko's ``PdfSigner`` and incremental writer. Either way only the update is
written (to a ``.part`` file, made durable, then renamed), and the document digest is
the original's hash (``OriginalDigest``, in a thread from the start for a big file)
continued with the update around the /Contents placeholder. A copy of the original's
hash state is kept (``_prefix``) for the document time stamp of B-LTA.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, cast

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest

from keys.errors import ServiceError
from keys.keystore import HashAlgorithm

from . import _draft, _prefix
from ._document import damaged, field_name_for, open_source, page_box, writer_for
from ._streams import CHUNK_SIZE, EARLY_SYNC_MIN, AppendedUpdate, BackgroundSync, OriginalDigest
from ._update import FieldUpdate, invisible_field_update
from .errors import InvalidDocument
from .stamp import StampSpec, stamp_rectangle, stamp_style


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFile:
    """The document an update continues, as it was read."""

    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Written:
    """What ``write_prepared`` wrote."""

    path: Path
    """The prepared file (the update)."""
    size: int
    field_name: str
    digest: PreparedByteRangeDigest
    source: SourceFile
    """The document the update continues, as it was read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldRequest:
    """What goes into the new signature field."""

    hash_algorithm: HashAlgorithm
    stamp: StampSpec | None
    field_name: str | None
    reason: str | None
    location: str | None
    signing_time: datetime
    reserved: int
    """Hex digits of the /Contents placeholder."""


def write_prepared(
    source: Path,
    workdir: Path,
    request: FieldRequest,
    signer: Callable[[], signers.ExternalSigner],
    *,
    copy_ahead: bool = True,
    sync_update: bool = True,
) -> Written:
    """Write the update that adds the field to ``source`` into ``workdir``. ``signer``
    is called only for pyHanko's writer (a stamp, an unusual document): building one
    costs more than our whole update. ``copy_ahead`` starts the output's copy (``_draft``);
    without it (the finish will consume ``source``) nothing is copied. The hash state
    after ``source``'s bytes is kept for the document time stamp (``_prefix``).
    Without ``sync_update`` the update is not made durable before it is renamed into
    place: only for a finish that checks it against the document digest (``_consume``),
    so a power loss costs that signature a fresh start, never a wrong document."""
    token = secrets.token_hex(16)
    part, final = workdir / f".{token}.part", workdir / f"{token}.pdf"
    with source.open("rb") as stream:
        seen = os.fstat(stream.fileno())
        hashing = OriginalDigest(source, request.hash_algorithm.value, size=seen.st_size)
        draft: _draft.Draft | None = None
        try:
            # The output's copy of a big document starts at once, beside the parse and
            # the hash (``_draft``; given up if the document is refused); a small one's
            # once the update is written (a thread for a millisecond's copy is not worth it).
            if copy_ahead and seen.st_size >= EARLY_SYNC_MIN:
                draft = _draft.Draft(source, workdir, source_size=seen.st_size)
            reader, existing = open_source(stream)
            name = field_name_for(existing, request.field_name)
            update = None
            if request.stamp is None and name not in existing:
                try:
                    update = invisible_field_update(
                        reader,
                        source_size=seen.st_size,
                        ends_with_newline=os.pread(stream.fileno(), 1, seen.st_size - 1) in (b"\n", b"\r"),
                        field_name=name,
                        signing_time=request.signing_time,
                        reason=request.reason,
                        location=request.location,
                        reserved=request.reserved,
                    )
                except Exception as exc:  # noqa: BLE001 - a hostile file can make the reader raise anything
                    raise damaged(exc, "the PDF is damaged and cannot be signed") from exc

            def durable(size: int) -> None:
                # The update is in place: the draft can take it now, long before a big
                # original is hashed.
                nonlocal draft
                part.replace(final)
                if not copy_ahead:
                    return
                if draft is None:
                    draft = _draft.Draft(source, workdir, source_size=seen.st_size)
                draft.complete(final, size=seen.st_size + size)

            try:
                if update is not None:
                    digest = _write_update(update, part, hashing, durable, sync=sync_update)
                    size = len(update.data)
                else:
                    digest = _write_with_pyhanko(
                        reader, name, request, signer(), part, hashing, seen.st_size, sync=sync_update
                    )
                    size = part.stat().st_size
                    durable(size)
            except BaseException as exc:
                part.unlink(missing_ok=True)
                final.unlink(missing_ok=True)
                _draft.discard(final, wait=True)
                if isinstance(exc, (ServiceError, OSError)) or not isinstance(exc, Exception):
                    raise
                if isinstance(exc, PyHankoSigningError):
                    raise InvalidDocument(f"the document cannot take this signature: {exc}") from exc
                # A hostile file can make the writer raise anything.
                raise damaged(exc, "the PDF is damaged and cannot be signed") from exc
            _prefix.remember(source, seen, request.hash_algorithm.value, hashing.result())
        finally:
            if draft is not None:
                draft.abandon()
            hashing.stop()
    return Written(
        path=final,
        size=size,
        field_name=name,
        digest=digest,
        source=SourceFile(path=source.absolute(), size=seen.st_size, mtime_ns=seen.st_mtime_ns),
    )


def _write_update(
    update: FieldUpdate,
    part: Path,
    hashing: OriginalDigest,
    durable: Callable[[int], None],
    *,
    sync: bool = True,
) -> PreparedByteRangeDigest:
    """Write our own update, make it durable (``sync``; a small original is hashed
    meanwhile), call ``durable``, and the digest (a big original's hash is still running
    in its thread)."""
    start = update.reserved_region_start - hashing.size
    end = update.reserved_region_end - hashing.size
    view = memoryview(update.data)
    digest = None
    with part.open("wb") as out:
        out.write(update.data)
        out.flush()
        syncing = BackgroundSync(out.fileno()) if sync else None
        try:
            if not hashing.in_background:
                digest = hashing.result()
        finally:
            if syncing is not None:
                syncing.wait()
    durable(len(update.data))
    if digest is None:
        digest = hashing.result()
    digest.update(view[:start])
    digest.update(view[end:])
    return PreparedByteRangeDigest(
        document_digest=digest.digest(),
        reserved_region_start=update.reserved_region_start,
        reserved_region_end=update.reserved_region_end,
    )


def _write_with_pyhanko(
    reader: PdfFileReader,
    name: str,
    request: FieldRequest,
    signer: signers.ExternalSigner,
    part: Path,
    hashing: OriginalDigest,
    source_size: int,
    *,
    sync: bool = True,
) -> PreparedByteRangeDigest:
    """pyHanko's ``PdfSigner`` over the incremental writer: stamps and unusual documents."""
    writer = writer_for(reader)
    stamp = request.stamp
    style, params, field_spec = None, None, fields.SigFieldSpec(name)
    if stamp is not None:
        index, box = page_box(writer, stamp.page)
        rectangle = stamp_rectangle(box, stamp.position, stamp.slot)
        style, params = stamp_style(
            stamp, signing_time=request.signing_time, reason=request.reason, location=request.location
        )
        field_spec = fields.SigFieldSpec(name, on_page=index, box=rectangle)
    metadata = signers.PdfSignatureMetadata(
        field_name=name,
        md_algorithm=request.hash_algorithm.value,
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=request.reason,
        location=request.location,
    )
    pdf_signer = signers.PdfSigner(metadata, signer, stamp_style=style, new_field_spec=field_spec)
    session = pdf_signer.init_signing_session(writer)
    session.system_time = request.signing_time
    document = session.prepare_tbs_document(
        validation_info=None, bytes_reserved=request.reserved, appearance_text_params=params
    )
    with part.open("w+b") as out:
        output = AppendedUpdate(source_size, out, hashing, sync=sync)
        try:
            # A file for pyHanko (it only uses the methods of IO that this has).
            placed, _ = document.digest_tbs_document(output=cast(IO[bytes], output), chunk_size=CHUNK_SIZE)
            digest = output.digest(placed)
            output.durable()
        finally:
            output.wait()
    return digest
