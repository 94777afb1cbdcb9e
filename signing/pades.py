"""PAdES signing in two steps, with the signer's key outside the service.

``async_prepare`` writes the document with a new signature field, the stamp and an empty
/Contents placeholder, and computes the signed attributes (pyHanko interrupted signing,
``ETSI.CAdES.detached``, signing-certificate-v2). The signer signs ``digest_to_sign``
as a digest. ``async_finish`` checks that signature, wraps it in the CMS, adds the
signature time stamp, and for B-LT/B-LTA the DSS and the document time stamp.

Nothing is kept in memory between the two steps: ``Prepared``, the prepared file (the
incremental update) and the document it continues are all the state there is. (The
hash state after the document, kept in memory by ``_prefix``, only spares B-LTA's
document time stamp a second pass over it; without it the file is hashed again.)
A caller that owns the document alone lets the finish turn it into the output
(``consume_source``, ``_consume``) instead of copying it.

B-B and B-T check the signer's certificate the quick way (``_signer_check``): the chain
above it remembered per root CRL, the signer's own fresh OCSP answer every time. B-LT
and B-LTA validate with pyhanko-certvalidator, whose paths and revocation data go into
the DSS.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import cms, x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_signer import (
    DSSContentSettings,
    PdfTBSDocument,
    PostSignInstructions,
    PreSignValidationStatus,
)
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation import DocumentSecurityStore
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.registry import SimpleCertificateStore

from keys.keystore import HashAlgorithm

from . import _prefix
from ._attributes import async_signed_attributes
from ._cms import (
    hash_algorithm_for,
    timestamp_certificates,
    timestamp_token_size,
    verify_signature,
)
from ._consume import ConsumedOutput
from ._doc_timestamp import async_add_document_timestamp
from ._output import SignedOutput
from ._prepare import FieldRequest, write_prepared
from ._signed_data import async_signed_data
from ._signer_check import OutOfScope, async_check_signer
from ._streams import CHUNK_SIZE
from .errors import (
    InvalidSigningRequest,
    PreparedDocumentMissing,
    SigningError,
    TrustServiceUnavailable,
)
from .prepared import Level, Prepared
from .stamp import StampSpec
from .validation import (
    InProcessRevocation,
    ValidationData,
    ValidationSource,
    async_validate_signer,
    async_validate_tsa,
    load_certificates,
    validation_context,
)

# The DSS goes into its own revision after the signature (B-LT), or into the document
# time stamp's revision (B-LTA, ``_doc_timestamp``), so the last signature still covers
# the whole file. No VRI: deprecated by PAdES, and it would force a second DSS update
# after the time stamp.
_DSS_SETTINGS = DSSContentSettings(include_vri=False)
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
    consume_source: bool = False,
) -> Prepared:
    """Prepare ``source`` for a signature by ``signer_certificate``; write the prepared
    file (the incremental update) into ``workdir`` (which must exist). ``source`` must
    stay where it is, unchanged, until the signature is finished (``async_finish``
    refuses a changed one). ``chain`` is the certificates above the signer's that go
    into the CMS. ``reason`` and ``location`` go into the signature dictionary and onto
    the stamp. ``now`` is the claimed signing time. ``consume_source`` says the finish
    will consume ``source`` (``async_finish(..., consume_source=True)``), so no copy of it
    is started for the output, and the prepared file is not synced (that finish checks
    it against the document digest)."""
    chosen = _level(level)
    cert, *chain_certs = load_certificates([signer_certificate, *chain], "signer")
    hash_algorithm = hash_algorithm_for(cert)
    signing_time = (now or datetime.now(UTC)).astimezone(UTC)
    # pyHanko's signer object (its certificate registry hashes every name, ~1.5 ms) is
    # needed only for a stamp, an unusual document or a first signature with a certificate.
    signer = functools.cache(lambda: signers.ExternalSigner(cert, _registry(chain_certs)))
    request = FieldRequest(
        hash_algorithm=hash_algorithm,
        stamp=stamp,
        field_name=field_name,
        reason=reason,
        location=location,
        signing_time=signing_time,
        reserved=2 * (len(signer_certificate) + sum(len(der) for der in chain) + _TOKEN_ALLOWANCE),
    )
    try:
        written = await asyncio.to_thread(
            write_prepared,
            source,
            workdir,
            request,
            signer,
            copy_ahead=not consume_source,
            sync_update=not consume_source,
        )
    except OSError as exc:
        raise SigningError(f"cannot read the document or write the prepared file: {exc}") from exc
    digest = written.digest
    der = await async_signed_attributes(signer, signer_certificate, hash_algorithm, digest.document_digest)
    prepared = Prepared(
        prepared_path=written.path,
        prepared_size=written.size,
        level=chosen,
        field_name=written.field_name,
        hash_algorithm=hash_algorithm,
        document_digest=digest.document_digest,
        reserved_region_start=digest.reserved_region_start,
        reserved_region_end=digest.reserved_region_end,
        signed_attributes=der,
        digest_to_sign=_digest(hash_algorithm, der),
        signer_certificate=signer_certificate,
        chain=tuple(chain),
        signing_time=signing_time,
        source_path=written.source.path,
        source_size=written.source.size,
        source_mtime_ns=written.source.mtime_ns,
    )
    try:
        prepared.check()
    except ValueError as exc:  # an invariant of this module, never the caller's input
        raise SigningError(f"the prepared signature is inconsistent: {exc}") from exc
    return prepared


async def async_finish(
    prepared: Prepared,
    signature: bytes,
    *,
    out: Path,
    timestamper: TimeStamper | None,
    validation: ValidationData | ValidationSource,
    consume_source: bool = False,
) -> Path:
    """Embed ``signature`` (over ``prepared.digest_to_sign``) and complete the level.

    The signature is checked first: a wrong one raises ``SignatureRejected`` and nothing
    is written. The signer's certificate must validate against ``validation`` (our root,
    revocation data, no fetching). The result is written to a temporary file next to
    ``out`` and renamed; the prepared file is left as it was, so a retry can finish it
    again. ``timestamper`` is needed from B-T up (our TSA, e.g. ``InProcessTimeStamper``).

    With ``consume_source`` the source file itself becomes ``out`` (``_consume``): for a
    caller that owns a durable source alone, it saves the copy and the ``fsync`` of the
    whole document. A retry with the same ``out`` after success returns ``out`` as it
    is, without signing again; ``PreparedDocumentMissing`` if the source was used up and
    ``out`` is not its result. ``out`` must be on the source's file system.
    """
    cert, *chain = load_certificates([prepared.signer_certificate, *prepared.chain], "signer")
    verify_signature(cert, prepared.digest_to_sign, prepared.hash_algorithm, signature)
    level = prepared.level
    if level.has_timestamp and timestamper is None:
        raise InvalidSigningRequest(f"level {level} needs a time-stamping authority")
    output: SignedOutput | ConsumedOutput
    if consume_source and prepared.source_path is not None:
        _check_prepared_file(prepared, with_source=False)
        try:
            consumed = await ConsumedOutput.open(prepared, out)
        except OSError as exc:
            raise SigningError(f"cannot write the signed document: {exc}") from exc
        if consumed is None:
            return out  # an earlier finish of this state made it
        output = consumed
    else:
        seen = _check_prepared_file(prepared)
        # From here on the copy of the prepared file runs in a thread beside the rest.
        draft_of = prepared.prepared_path if prepared.source_path is not None else None
        output = SignedOutput(prepared.parts, out, draft_of=draft_of)
        if seen is not None and prepared.source_path is not None and level is Level.B_LTA:
            output.prefix = _prefix.recall(prepared.source_path, seen, prepared.hash_algorithm.value)
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
    output: SignedOutput | ConsumedOutput,
    timestamper: TimeStamper | None,
    validation: ValidationData | ValidationSource,
) -> None:
    """Everything of ``async_finish`` after the checks, while ``output`` is being copied."""
    level = prepared.level
    signer = functools.cache(
        lambda: signers.ExternalSigner(cert, _registry(chain), signature_value=signature)
    )
    signature_cms: bytes | cms.ContentInfo
    tsa_signers: list[x509.Certificate] = []
    tsa_certs: list[x509.Certificate] = []
    if level.has_timestamp:
        try:
            signature_cms = await signer().async_sign_prescribed_attributes(
                prepared.hash_algorithm.value,
                signed_attrs=cms.CMSAttributes.load(prepared.signed_attributes),
                timestamper=timestamper,
            )
        except TimestampRequestError as exc:
            raise TrustServiceUnavailable(f"no signature time stamp: {exc}") from exc
        tsa_signers, tsa_certs = timestamp_certificates(signature_cms)
    else:
        signature_cms = await async_signed_data(
            signer,
            certificates=b"".join(
                _length_prefixed(der) for der in (prepared.signer_certificate, *prepared.chain)
            ),
            hash_algorithm=prepared.hash_algorithm,
            signed_attributes=prepared.signed_attributes,
            signature=signature,
        )
    if not level.has_validation_data:
        # B-B and B-T: what is written does not depend on the validation, so the CMS goes
        # in now and the disk flushes the file while the certificates are checked.
        await _embed(prepared, signature_cms, output, None, None)
        await output.start_sync()
        if not await _quick_check(validation, cert, tsa_signers):
            context = await _context(validation, cert, chain, tsa_certs)
            try:
                await _validate_paths(context, cert, chain, tsa_signers, tsa_certs)
            finally:
                await context.aclose()  # type: ignore[no-untyped-call]
        await output.commit()
        return
    context = await _context(validation, cert, chain, tsa_certs)
    try:
        signer_path, tsa_paths = await _validate_paths(context, cert, chain, tsa_signers, tsa_certs)
        paths = [signer_path, *tsa_paths]
        ocsps, crls = list(context.ocsps), list(context.crls)
        if level is Level.B_LT:
            instructions = PostSignInstructions(
                validation_info=PreSignValidationStatus(
                    signer_path=signer_path, validation_paths=paths, ocsps_to_embed=ocsps, crls_to_embed=crls
                ),
                timestamper=None,
                dss_settings=_DSS_SETTINGS,
                # The root goes into the DSS too: pyHanko's LTA validation looks for the
                # issuer of the root CRL among the DSS certificates, not the trust roots.
                embed_roots=True,
            )
            await _embed(prepared, signature_cms, output, instructions, context)
        else:
            # B-LTA: the DSS and the document time stamp in one revision, as pyHanko's
            # post-signing step writes them, but hashed from the kept state (``_doc_timestamp``).
            assert timestamper is not None and isinstance(signature_cms, cms.ContentInfo)
            await _embed(prepared, signature_cms, output, None, None)

            def add_dss(writer: IncrementalPdfFileWriter) -> object:
                return DocumentSecurityStore.supply_dss_in_writer(
                    writer,
                    None,
                    paths=paths,
                    validation_context=context,
                    ocsps=ocsps,
                    crls=crls,
                    embed_roots=True,
                )

            await async_add_document_timestamp(
                await output.stream(),
                add_dss=add_dss,
                timestamper=timestamper,
                algorithm=prepared.hash_algorithm.value,
                prefix=output.prefix,
                prefix_size=prepared.source_size,
                token_size_hint=timestamp_token_size(signature_cms),
            )
        await output.commit()
    finally:
        await context.aclose()  # type: ignore[no-untyped-call]


async def _validate_paths(
    context: ValidationContext,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    tsa_signers: list[x509.Certificate],
    tsa_certs: list[x509.Certificate],
) -> tuple[ValidationPath, list[ValidationPath]]:
    """The full path: pyhanko-certvalidator for the signer and the TSAs."""
    signer_path = await async_validate_signer(context, cert, chain)
    tsa_paths = [await async_validate_tsa(context, tsa, [*chain, *tsa_certs]) for tsa in tsa_signers]
    return signer_path, tsa_paths


async def _quick_check(
    validation: ValidationData | ValidationSource, cert: x509.Certificate, tsa_signers: list[x509.Certificate]
) -> bool:
    """The quick check of B-B and B-T (the chain above the signer remembered per CRL,
    the signer's own fresh OCSP answer every time); False if it does not apply."""
    if not isinstance(validation, InProcessRevocation):
        return False
    try:
        await async_check_signer(validation, cert, tsa_signers=tsa_signers)
    except OutOfScope:
        return False
    return True


async def _context(
    validation: ValidationData | ValidationSource,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    tsa_certs: list[x509.Certificate],
) -> ValidationContext:
    """pyhanko-certvalidator's context over the validation data for the full path."""
    if isinstance(validation, ValidationData):
        data = validation
    else:
        data = await validation.async_validation_data([cert, *chain, *tsa_certs])
    return validation_context(data, extra=[*chain, *tsa_certs])


async def _embed(
    prepared: Prepared,
    signature_cms: bytes | cms.ContentInfo,
    output: SignedOutput | ConsumedOutput,
    instructions: PostSignInstructions | None,
    context: ValidationContext | None,
) -> None:
    """Put the CMS into the output's placeholder and do the post-sign steps (DSS, document time stamp)."""
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


def _check_prepared_file(prepared: Prepared, *, with_source: bool = True) -> os.stat_result | None:
    """The prepared file is there, has its size, and its placeholder is still empty; the
    document it continues (``with_source``) is there with the size and modification
    time it had. Its ``stat``, if there is one."""
    try:
        with prepared.prepared_path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            stream.seek(prepared.reserved_region_start - prepared.source_size)
            region = stream.read(prepared.reserved_region_end - prepared.reserved_region_start)
        source = None
        if prepared.source_path is not None and with_source:
            source = prepared.source_path.stat()
    except OSError as exc:
        raise PreparedDocumentMissing("the prepared document is no longer available; start again") from exc
    empty = b"<" + b"0" * (len(region) - 2) + b">"
    if size != prepared.prepared_size or region != empty:
        raise PreparedDocumentMissing("the prepared document was changed; start again")
    if source is not None and (source.st_size, source.st_mtime_ns) != (
        prepared.source_size,
        prepared.source_mtime_ns,
    ):
        raise PreparedDocumentMissing("the document to sign was changed; start again")
    return source


def _registry(certs: list[x509.Certificate]) -> SimpleCertificateStore:
    return SimpleCertificateStore.from_certs(certs)  # type: ignore[no-untyped-call, no-any-return]


def _length_prefixed(der: bytes) -> bytes:
    return len(der).to_bytes(4, "big") + der


def _level(level: Level | str) -> Level:
    try:
        return Level(level)
    except ValueError:
        raise InvalidSigningRequest(f"unknown level {level!r}: use B-B, B-T, B-LT or B-LTA") from None


def _digest(hash_algorithm: HashAlgorithm, data: bytes) -> bytes:
    return hashlib.new(hash_algorithm.value, data).digest()
