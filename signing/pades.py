"""PAdES signing in two steps, with the signer's key outside the service.

``async_prepare`` writes the document with a new signature field, the stamp and an empty
/Contents placeholder, and computes the signed attributes (pyHanko interrupted signing,
``ETSI.CAdES.detached``, signing-certificate-v2). The signer signs ``digest_to_sign``
as a digest. ``async_finish`` checks that signature, wraps it in the CMS, adds the
signature time stamp, and for B-LT/B-LTA the DSS and the document time stamp.

Nothing is kept in memory between the two steps: ``Prepared`` and the prepared file are
all the state there is.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import cms, x509
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_signer import (
    DSSContentSettings,
    PdfTBSDocument,
    PostSignInstructions,
    PreSignValidationStatus,
    TimestampDSSContentSettings,
)
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from keys.errors import ServiceError
from keys.keystore import HashAlgorithm

from ._attributes import async_signed_attributes
from ._cms import hash_algorithm_for, timestamp_certificates, verify_signature
from ._document import damaged, field_name_for, open_writer, page_box
from ._output import SignedOutput
from ._streams import CHUNK_SIZE, BackgroundSync
from .errors import (
    InvalidDocument,
    InvalidSigningRequest,
    PreparedDocumentMissing,
    SigningError,
    TrustServiceUnavailable,
)
from .prepared import Level, Prepared
from .stamp import StampSpec, stamp_rectangle, stamp_style
from .validation import (
    ValidationData,
    ValidationSource,
    async_validate_signer,
    async_validate_tsa,
    load_certificates,
    validation_context,
)

# The DSS goes into its own revision after the signature (B-LT), or into the document
# time stamp's revision (B-LTA), so the last signature still covers the whole file.
# No VRI: deprecated by PAdES, and it would force a second DSS update after the time stamp.
_DSS_SETTINGS = DSSContentSettings(
    include_vri=False,
    next_ts_settings=TimestampDSSContentSettings(include_vri=False, update_before_ts=True),
)
_TOKEN_ALLOWANCE = 8192
"""Bytes kept free in /Contents for the time-stamp token and the CMS structure."""


async def async_prepare(
    source: Path,
    workdir: Path,
    *,
    signer_certificate: bytes,
    chain: Sequence[bytes],
    level: Level | str = Level.B_LTA,
    stamp: StampSpec | None = None,
    field_name: str | None = None,
    reason: str | None = None,
    location: str | None = None,
    now: datetime | None = None,
) -> Prepared:
    """Prepare ``source`` for a signature by ``signer_certificate``; write the prepared
    file into ``workdir`` (which must exist). ``chain`` is the certificates above the
    signer's that go into the CMS. ``reason`` and ``location`` go into the signature
    dictionary and onto the stamp. ``now`` is the claimed signing time."""
    chosen = _level(level)
    cert, *chain_certs = load_certificates([signer_certificate, *chain], "signer")
    hash_algorithm = hash_algorithm_for(cert)
    signing_time = (now or datetime.now(UTC)).astimezone(UTC)
    registry = SimpleCertificateStore.from_certs(chain_certs)  # type: ignore[no-untyped-call]
    signer = signers.ExternalSigner(cert, registry)
    reserved = 2 * (len(signer_certificate) + sum(len(der) for der in chain) + _TOKEN_ALLOWANCE)
    try:
        written = await asyncio.to_thread(
            _write_prepared,
            source,
            workdir,
            signer=signer,
            hash_algorithm=hash_algorithm,
            stamp=stamp,
            field_name=field_name,
            reason=reason,
            location=location,
            signing_time=signing_time,
            reserved=reserved,
        )
    except OSError as exc:
        raise SigningError(f"cannot read the document or write the prepared file: {exc}") from exc
    path, size, name, digest = written
    der = await async_signed_attributes(signer, signer_certificate, hash_algorithm, digest.document_digest)
    prepared = Prepared(
        prepared_path=path,
        prepared_size=size,
        level=chosen,
        field_name=name,
        hash_algorithm=hash_algorithm,
        document_digest=digest.document_digest,
        reserved_region_start=digest.reserved_region_start,
        reserved_region_end=digest.reserved_region_end,
        signed_attributes=der,
        digest_to_sign=_digest(hash_algorithm, der),
        signer_certificate=signer_certificate,
        chain=tuple(chain),
        signing_time=signing_time,
    )
    try:
        prepared.check()
    except ValueError as exc:  # an invariant of this module, never the caller's input
        raise SigningError(f"the prepared signature is inconsistent: {exc}") from exc
    return prepared


def _write_prepared(
    source: Path,
    workdir: Path,
    *,
    signer: signers.ExternalSigner,
    hash_algorithm: HashAlgorithm,
    stamp: StampSpec | None,
    field_name: str | None,
    reason: str | None,
    location: str | None,
    signing_time: datetime,
    reserved: int,
) -> tuple[Path, int, str, PreparedByteRangeDigest]:
    """The blocking part of ``async_prepare``: parse, add the field, write, hash."""
    token = secrets.token_hex(16)
    part, final = workdir / f".{token}.part", workdir / f"{token}.pdf"
    with source.open("rb") as stream:
        writer, info = open_writer(stream)
        try:
            name = field_name_for(info, field_name)
            style, params, field_spec = None, None, fields.SigFieldSpec(name)
            if stamp is not None:
                index, box = page_box(writer, stamp.page)
                rectangle = stamp_rectangle(box, stamp.position, stamp.slot)
                style, params = stamp_style(
                    stamp, signing_time=signing_time, reason=reason, location=location
                )
                field_spec = fields.SigFieldSpec(name, on_page=index, box=rectangle)
            metadata = signers.PdfSignatureMetadata(
                field_name=name,
                md_algorithm=hash_algorithm.value,
                subfilter=fields.SigSeedSubFilter.PADES,
                reason=reason,
                location=location,
            )
            pdf_signer = signers.PdfSigner(metadata, signer, stamp_style=style, new_field_spec=field_spec)
            session = pdf_signer.init_signing_session(writer)
            session.system_time = signing_time
            document = session.prepare_tbs_document(
                validation_info=None, bytes_reserved=reserved, appearance_text_params=params
            )
            with part.open("w+b") as out:
                syncs: list[BackgroundSync] = []
                writer.after_copy = lambda stream: syncs.append(BackgroundSync(stream.fileno()))
                try:
                    digest, _ = document.digest_tbs_document(output=out, chunk_size=CHUNK_SIZE)
                    out.flush()
                finally:
                    for sync in syncs:
                        sync.wait()
                os.fsync(out.fileno())
            size = part.stat().st_size
            part.replace(final)
        except (ServiceError, OSError):
            part.unlink(missing_ok=True)
            raise
        except PyHankoSigningError as exc:
            part.unlink(missing_ok=True)
            raise InvalidDocument(f"the document cannot take this signature: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - a hostile file can make the writer raise anything
            part.unlink(missing_ok=True)
            raise damaged(exc, "the PDF is damaged and cannot be signed") from exc
    return final, size, name, digest


async def async_finish(
    prepared: Prepared,
    signature: bytes,
    *,
    out: Path,
    timestamper: TimeStamper | None,
    validation: ValidationData | ValidationSource,
) -> Path:
    """Embed ``signature`` (over ``prepared.digest_to_sign``) and complete the level.

    The signature is checked first: a wrong one raises ``SignatureRejected`` and nothing
    is written. The signer's certificate must validate against ``validation`` (our root,
    revocation data, no fetching). The result is written to a temporary file next to
    ``out`` and renamed; the prepared file is left as it was, so a retry can finish it
    again. ``timestamper`` is needed from B-T up (our TSA, e.g. ``InProcessTimeStamper``).
    """
    cert, *chain = load_certificates([prepared.signer_certificate, *prepared.chain], "signer")
    verify_signature(cert, prepared.digest_to_sign, prepared.hash_algorithm, signature)
    _check_prepared_file(prepared)
    level = prepared.level
    if level.has_timestamp and timestamper is None:
        raise InvalidSigningRequest(f"level {level} needs a time-stamping authority")
    # From here on the copy of the prepared file runs in a thread beside the rest.
    output = SignedOutput(prepared.prepared_path, out)
    try:
        await _complete(prepared, signature, cert, chain, output, timestamper, validation)
    except TimestampRequestError as exc:
        await output.discard()
        raise TrustServiceUnavailable(f"no document time stamp: {exc}") from exc
    except OSError as exc:
        await output.discard()
        raise SigningError(f"cannot write the signed document: {exc}") from exc
    except PyHankoSigningError as exc:
        await output.discard()
        raise SigningError(f"pyHanko could not finish the signature: {exc}") from exc
    except BaseException:
        await output.discard()
        raise
    return out


async def _complete(
    prepared: Prepared,
    signature: bytes,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    output: SignedOutput,
    timestamper: TimeStamper | None,
    validation: ValidationData | ValidationSource,
) -> None:
    """Everything of ``async_finish`` after the checks, while ``output`` is being copied."""
    level = prepared.level
    registry = SimpleCertificateStore.from_certs(chain)  # type: ignore[no-untyped-call]
    signer = signers.ExternalSigner(cert, registry, signature_value=signature)
    try:
        signature_cms = await signer.async_sign_prescribed_attributes(
            prepared.hash_algorithm.value,
            signed_attrs=cms.CMSAttributes.load(prepared.signed_attributes),
            timestamper=timestamper if level.has_timestamp else None,
        )
    except TimestampRequestError as exc:
        raise TrustServiceUnavailable(f"no signature time stamp: {exc}") from exc
    tsa_signers, tsa_certs = timestamp_certificates(signature_cms)
    if isinstance(validation, ValidationData):
        data = validation
    else:
        data = await validation.async_validation_data([cert, *chain, *tsa_certs])
    context = validation_context(data, extra=[*chain, *tsa_certs])
    try:
        signer_path = await async_validate_signer(context, cert, chain)
        tsa_paths = [await async_validate_tsa(context, tsa, [*chain, *tsa_certs]) for tsa in tsa_signers]
        instructions = None
        if level.has_validation_data:
            instructions = PostSignInstructions(
                validation_info=PreSignValidationStatus(
                    signer_path=signer_path,
                    validation_paths=[signer_path, *tsa_paths],
                    ocsps_to_embed=list(context.ocsps),
                    crls_to_embed=list(context.crls),
                ),
                timestamper=timestamper if level is Level.B_LTA else None,
                timestamp_md_algorithm=prepared.hash_algorithm.value,
                dss_settings=_DSS_SETTINGS,
                # The root goes into the DSS too: pyHanko's LTA validation looks for the
                # issuer of the root CRL among the DSS certificates, not the trust roots.
                embed_roots=True,
            )
        digest = PreparedByteRangeDigest(
            document_digest=prepared.document_digest,
            reserved_region_start=prepared.reserved_region_start,
            reserved_region_end=prepared.reserved_region_end,
        )
        await PdfTBSDocument.async_finish_signing(
            await output.stream(),
            digest,
            signature_cms,
            post_sign_instr=instructions,
            validation_context=context,
            chunk_size=CHUNK_SIZE,
        )
        await output.commit()
    finally:
        await context.aclose()  # type: ignore[no-untyped-call]


def _check_prepared_file(prepared: Prepared) -> None:
    """The prepared file is there, has its size, and its placeholder is still empty."""
    try:
        with prepared.prepared_path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            stream.seek(prepared.reserved_region_start)
            region = stream.read(prepared.reserved_region_end - prepared.reserved_region_start)
    except OSError as exc:
        raise PreparedDocumentMissing("the prepared document is no longer available; start again") from exc
    empty = b"<" + b"0" * (len(region) - 2) + b">"
    if size != prepared.prepared_size or region != empty:
        raise PreparedDocumentMissing("the prepared document was changed; start again")


def _level(level: Level | str) -> Level:
    try:
        return Level(level)
    except ValueError:
        raise InvalidSigningRequest(f"unknown level {level!r}: use B-B, B-T, B-LT or B-LTA") from None


def _digest(hash_algorithm: HashAlgorithm, data: bytes) -> bytes:
    return hashlib.new(hash_algorithm.value, data).digest()
