"""Every bad input gets its own clear error, and nothing is written or half-written."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields
from pyhanko.sign import signers as pyhanko_signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from keys.issuance import Purpose
from keys.keystore import HashAlgorithm
from keys.revocation import revoke_certificate
from keys.tsa import rejection
from signing import (
    InProcessTimeStamper,
    InvalidDocument,
    InvalidSigningRequest,
    Level,
    Prepared,
    PreparedDocumentMissing,
    SignatureRejected,
    SignerCertificateRejected,
    StampSpec,
    TrustServiceUnavailable,
    async_prepare,
    check_document,
)
from tests.conftest import IssuedCitizen, issue_citizen
from tests.signing.conftest import Trust, make_pdf, run, sign_digest


def _prepare(trust: Trust, citizen: IssuedCitizen, source: Path, workdir: Path, **kwargs: object) -> Prepared:
    return trust.prepare(source, workdir, citizen.der, **kwargs)


def _finish(trust: Trust, prepared: Prepared, signature: bytes, out: Path) -> Path:
    return trust.finish(prepared, signature, out)


def _prepare_rejected(trust: Trust, citizen: IssuedCitizen, source: Path, tmp_path: Path) -> str:
    workdir = tmp_path / "work"
    with pytest.raises(InvalidDocument) as caught:
        _prepare(trust, citizen, source, workdir)
    assert list(workdir.iterdir()) == []
    with pytest.raises(InvalidDocument):
        check_document(source)
    assert caught.value.public and caught.value.status == 422
    return str(caught.value)


def test_not_a_pdf(trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path) -> None:
    source = tmp_path / "letter.pdf"
    source.write_text("Dear citizen,\nthis is plain text with a .pdf name.\n")
    assert _prepare_rejected(trust, signers["p256"], source, tmp_path) == "the file is not a PDF document"


def test_truncated_pdf(trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path) -> None:
    whole = make_pdf(tmp_path / "whole.pdf").read_bytes()
    source = tmp_path / "cut.pdf"
    source.write_bytes(whole[: len(whole) * 2 // 3])
    assert "truncated or damaged" in _prepare_rejected(trust, signers["p256"], source, tmp_path)


def test_encrypted_pdf(trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path) -> None:
    source = make_pdf(tmp_path / "secret.pdf", password="kala")
    assert "encrypted" in _prepare_rejected(trust, signers["p256"], source, tmp_path)


def test_decompression_bomb_in_an_object_stream(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    """The page tree sits in an object stream that inflates 1000:1 to 48 MiB; pyHanko's
    limits for untrusted input stop at 4 MiB, so this is refused at once."""
    source = tmp_path / "bomb.pdf"
    source.write_bytes(_pdf_with_pages_in_object_stream(padding=48 * 1024 * 1024))
    assert source.stat().st_size < 100_000
    message = _prepare_rejected(trust, signers["p256"], source, tmp_path)
    assert "decompresses beyond the limits" in message
    # The same document without the padding is fine: the limit is what refused it.
    small = tmp_path / "small.pdf"
    small.write_bytes(_pdf_with_pages_in_object_stream(padding=1000))
    assert check_document(small).pages == 1


def _pdf_with_pages_in_object_stream(*, padding: int) -> bytes:
    """Pages (2) and page (3) in one object stream, ``padding`` blanks between them."""
    pages = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>\n"
    header = f"2 0 3 {len(pages) + padding} ".encode()
    body = header + pages + b" " * padding + page
    return _pdf_with_object_stream(zlib.compress(body, 9), first=len(header))


def _pdf_with_object_stream(compressed: bytes, *, first: int) -> bytes:
    """catalog (1) and xref stream (5) as plain objects, pages (2) and page (3) in ObjStm 4."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {1: out.tell()}
    out.write(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
    offsets[4] = out.tell()
    header = f"4 0 obj\n<< /Type /ObjStm /N 2 /First {first} /Filter /FlateDecode /Length {len(compressed)} >>\nstream\n"
    out.write(header.encode() + compressed + b"\nendstream\nendobj\n")
    offsets[5] = out.tell()
    rows = [b"\x00\x00\x00\x00\x00\xff\xff"]
    rows.append(b"\x01" + offsets[1].to_bytes(4, "big") + b"\x00\x00")
    rows.append(b"\x02" + (4).to_bytes(4, "big") + b"\x00\x00")
    rows.append(b"\x02" + (4).to_bytes(4, "big") + b"\x00\x01")
    rows.append(b"\x01" + offsets[4].to_bytes(4, "big") + b"\x00\x00")
    rows.append(b"\x01" + offsets[5].to_bytes(4, "big") + b"\x00\x00")
    table = b"".join(rows)
    out.write(
        f"5 0 obj\n<< /Type /XRef /Size 6 /W [1 4 2] /Root 1 0 R /Length {len(table)} >>\nstream\n".encode()
        + table
        + b"\nendstream\nendobj\n"
    )
    out.write(f"startxref\n{offsets[5]}\n%%EOF\n".encode())
    return out.getvalue()


def test_document_certified_against_changes(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    citizen = signers["p256"]
    key = asn1_keys.PrivateKeyInfo.load(
        citizen.private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    signer = pyhanko_signers.SimpleSigner(
        x509.Certificate.load(citizen.der),
        key,
        SimpleCertificateStore.from_certs([trust.pki.citizen_ca.certificate]),
    )
    plain = make_pdf(tmp_path / "plain.pdf")
    with plain.open("rb") as stream:
        certified = pyhanko_signers.sign_pdf(
            IncrementalPdfFileWriter(stream),
            pyhanko_signers.PdfSignatureMetadata(
                field_name="Certification", certify=True, docmdp_permissions=fields.MDPPerm.NO_CHANGES
            ),
            signer=signer,
        )
    source = tmp_path / "certified.pdf"
    source.write_bytes(certified.getvalue())
    workdir = tmp_path / "work"
    with pytest.raises(InvalidDocument, match="certified against any change"):
        _prepare(trust, citizen, source, workdir)
    assert list(workdir.iterdir()) == []


def test_signature_by_another_key_is_rejected_and_nothing_written(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    prepared = _prepare(trust, signers["p256"], make_pdf(tmp_path / "in.pdf"), tmp_path / "work")
    other = ec.generate_private_key(ec.SECP256R1())
    signature = other.sign(prepared.digest_to_sign, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    out = tmp_path / "out.pdf"
    with pytest.raises(SignatureRejected) as caught:
        _finish(trust, prepared, signature, out)
    assert caught.value.status == 409 and caught.value.public
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.pdf", "work"]


def test_signature_over_the_wrong_digest_is_rejected(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    citizen = signers["p384"]
    prepared = _prepare(trust, citizen, make_pdf(tmp_path / "in.pdf"), tmp_path / "work")
    assert prepared.hash_algorithm is HashAlgorithm.SHA384
    # A classic mistake: signing the document digest instead of the signed attributes.
    wrong = citizen.private_key.sign(prepared.document_digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    # And hashing the digest again instead of signing it as a digest.
    hashed_twice = citizen.private_key.sign(prepared.digest_to_sign, ec.ECDSA(hashes.SHA384()))
    for signature in (wrong, hashed_twice, b"", b"\x30\x00", sign_digest(citizen, prepared) + b"\x00"):
        with pytest.raises(SignatureRejected):
            _finish(trust, prepared, signature, tmp_path / "out.pdf")
    assert not (tmp_path / "out.pdf").exists()
    # The prepared file is untouched: the right signature still finishes it.
    assert _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / "out.pdf").exists()


def test_revoked_signing_certificate_is_refused(trust: Trust, tmp_path: Path) -> None:
    citizen = issue_citizen(trust.env, Purpose.SIGNING)
    prepared = _prepare(trust, citizen, make_pdf(tmp_path / "in.pdf"), tmp_path / "work", level=Level.B_B)
    revoke_certificate(trust.session, trust.keystore, trust.pki, citizen.record.serial)
    with pytest.raises(SignerCertificateRejected, match="revoked"):
        _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / "out.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.pdf", "work"]


def test_changed_or_missing_prepared_file(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, make_pdf(tmp_path / "in.pdf"), tmp_path / "work")
    signature = sign_digest(citizen, prepared)
    data = bytearray(prepared.prepared_path.read_bytes())
    # The prepared file holds the update after the source: offsets count from the source.
    data[prepared.reserved_region_start - prepared.source_size + 10] = ord("A")
    prepared.prepared_path.write_bytes(bytes(data))
    with pytest.raises(PreparedDocumentMissing, match="changed"):
        _finish(trust, prepared, signature, tmp_path / "out.pdf")
    prepared.prepared_path.unlink()
    with pytest.raises(PreparedDocumentMissing, match="no longer available"):
        _finish(trust, prepared, signature, tmp_path / "out.pdf")
    for garbage in (b"", b"{}", b'{"v": 2}', prepared.to_bytes().replace(b'"B-LTA"', b'"B-X"')):
        with pytest.raises(PreparedDocumentMissing, match="unreadable"):
            Prepared.from_bytes(garbage)


def test_changed_or_missing_source(trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path) -> None:
    """The prepared file continues the uploaded document, which must stay as it was."""
    citizen = signers["p256"]
    source = make_pdf(tmp_path / "in.pdf")
    prepared = _prepare(trust, citizen, source, tmp_path / "work")
    assert prepared.source_path == source.absolute() and prepared.source_size == source.stat().st_size
    signature = sign_digest(citizen, prepared)
    original = source.read_bytes()
    for changed in (original + b"\n", original):  # another size; the same bytes written again
        source.write_bytes(changed)
        with pytest.raises(PreparedDocumentMissing, match="document to sign was changed"):
            _finish(trust, prepared, signature, tmp_path / "out.pdf")
    source.unlink()
    with pytest.raises(PreparedDocumentMissing, match="no longer available"):
        _finish(trust, prepared, signature, tmp_path / "out.pdf")
    source.write_bytes(original)
    os.utime(source, ns=(prepared.source_mtime_ns, prepared.source_mtime_ns))
    assert _finish(trust, prepared, signature, tmp_path / "out.pdf").exists()


def test_time_stamp_refused_by_the_tsa(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, make_pdf(tmp_path / "in.pdf"), tmp_path / "work", level=Level.B_T)
    refusing = InProcessTimeStamper(lambda der: rejection("system_failure", "TSA key not available").der)
    with pytest.raises(TrustServiceUnavailable, match="TSA key not available"):
        trust.finish(prepared, sign_digest(citizen, prepared), tmp_path / "out.pdf", timestamper=refusing)
    with pytest.raises(InvalidSigningRequest, match="needs a time-stamping authority"):
        trust.finish(prepared, sign_digest(citizen, prepared), tmp_path / "out.pdf", timestamper=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.pdf", "work"]


def test_bad_requests(trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path) -> None:
    citizen = signers["p256"]
    source = make_pdf(tmp_path / "in.pdf", pages=2)
    workdir = tmp_path / "work"
    for kwargs, message in [
        ({"level": "B-LTV"}, "unknown level"),
        ({"stamp": StampSpec(signer_name="Mari", page=2)}, "page 2 does not exist"),
        ({"stamp": StampSpec(signer_name="Mari", page=-3)}, "page -3 does not exist"),
        ({"field_name": "Sig.1"}, "field name"),
    ]:
        with pytest.raises(InvalidSigningRequest, match=message):
            _prepare(trust, citizen, source, workdir, **kwargs)
    with pytest.raises(InvalidSigningRequest, match="not a valid DER certificate"):
        run(async_prepare(source, workdir, signer_certificate=b"\x30\x03\x02\x01\x01", chain=[]))
    tiny = make_pdf(tmp_path / "tiny.pdf", media_box=(0, 0, 200, 100))
    with pytest.raises(InvalidSigningRequest, match="too small"):
        _prepare(trust, citizen, tiny, workdir, stamp=StampSpec(signer_name="Mari"))
    assert list(workdir.iterdir()) == []


def test_a_filled_field_cannot_be_signed_again(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    citizen = signers["p256"]
    first = _prepare(trust, citizen, make_pdf(tmp_path / "in.pdf"), tmp_path / "work", level=Level.B_B)
    signed = _finish(trust, first, sign_digest(citizen, first), tmp_path / "signed.pdf")
    info = check_document(signed)
    assert (info.pages, info.signatures, info.signature_fields) == (1, 1, ("Signature1",))
    with pytest.raises(InvalidDocument, match="filled"):
        _prepare(trust, citizen, signed, tmp_path / "work", field_name="Signature1")
    # Without a name the next free one is taken.
    second = _prepare(trust, citizen, signed, tmp_path / "work", level=Level.B_B)
    assert second.field_name == "Signature2"
