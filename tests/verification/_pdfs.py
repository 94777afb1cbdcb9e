"""Signed documents and trust for the PDF validation tests.

Real signatures only: our signing service (``signing.async_prepare``/``async_finish``)
with our PKI, TSA, OCSP responder and CRLs; pyHanko's own signer where the service
cannot make the document (certification signatures, a self-made CA).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.ades.api import CAdESSignedAttrSpec
from pyhanko.sign.fields import MDPPerm
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing import Level, async_finish, async_prepare
from tests.conftest import IssuedCitizen
from tests.signing.conftest import Trust, make_pdf, sign_digest
from verification import RevocationData, TrustConfig, build_trust


def trust_config(trust: Trust, *, anchor_folder: Path | None = None) -> TrustConfig:
    pki = trust.pki
    own = (pki.citizen_ca, pki.tsa, pki.ocsp_responder, pki.qr_seal)
    return build_trust(
        (trust.root_der,), tuple(bytes(i.certificate.dump()) for i in own), anchor_folder=anchor_folder
    )


def provider(trust: Trust) -> Any:
    """Our OCSP responder and CRLs, in process: what ``api/routes/verify.py`` passes."""
    source = trust.revocation()

    async def provide(certificates: tuple[bytes, ...]) -> RevocationData:
        data = await source.async_validation_data([asn1_x509.Certificate.load(d) for d in certificates])
        return RevocationData(ocsp_responses=data.ocsp_responses, crls=data.crls)

    return provide


def run(coro: Awaitable[Any]) -> Any:
    async def wrapped() -> Any:
        return await coro

    return asyncio.run(wrapped())


def sign(
    trust: Trust, citizen: IssuedCitizen, source: Path, out: Path, level: Level = Level.B_LTA, **options: Any
) -> Path:
    """Sign ``source`` through the signing service (the citizen's key stands in for the app)."""
    workdir = out.parent / f"work-{out.stem}"
    workdir.mkdir(exist_ok=True)
    prepared = run(
        async_prepare(
            source, workdir, signer_certificate=citizen.der, chain=trust.chain, level=level, **options
        )
    )
    run(
        async_finish(
            prepared,
            sign_digest(citizen, prepared),
            out=out,
            timestamper=trust.timestamper(),
            validation=trust.revocation(),
        )
    )
    return out


def simple_signer(citizen: IssuedCitizen, trust: Trust) -> signers.SimpleSigner:
    """pyHanko's signer with the citizen's key (for documents the service does not make)."""
    key = citizen.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(citizen.der),
        signing_key=asn1_keys.PrivateKeyInfo.load(key),
        cert_registry=SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(d) for d in trust.chain]),
    )


def pyhanko_sign(
    source: Path,
    out: Path,
    signer: signers.Signer,
    *,
    field: str,
    certify: bool = False,
    permission: MDPPerm | None = None,
    box: tuple[int, int, int, int] | None = None,
    attacker: bool = False,
    timestamper: Any = None,
) -> Path:
    """A PAdES B-B signature (or certification) made with pyHanko directly, incrementally.

    ``attacker``: skip pyHanko's refusal to sign after a P=1 certification, as an
    attacker's tool would."""
    with contextlib.ExitStack() as stack, source.open("rb") as stream:
        if attacker:
            stack.enter_context(
                mock.patch.object(signers.PdfSigner, "_enforce_certification_constraints", lambda *_: None)
            )
        writer = IncrementalPdfFileWriter(stream, strict=False)
        if box is not None:
            fields.append_signature_field(writer, fields.SigFieldSpec(field, box=box, on_page=0))
        meta = signers.PdfSignatureMetadata(
            field_name=field,
            certify=certify,
            docmdp_permissions=permission or MDPPerm.FILL_FORMS,
            subfilter=fields.SigSeedSubFilter.PADES,
            # With a time stamper: a content time stamp too (proof of when it was signed).
            cades_signed_attr_spec=CAdESSignedAttrSpec(timestamp_content=True) if timestamper else None,
        )
        buffer = io.BytesIO()
        run(
            signers.PdfSigner(meta, signer=signer, timestamper=timestamper).async_sign_pdf(
                writer, output=buffer
            )
        )
    out.write_bytes(buffer.getvalue())
    return out


@dataclass(frozen=True)
class SelfMadeCa:
    """A CA nobody trusts (unless an operator adds it), with one signer below it."""

    ca_pem: bytes
    signer: signers.SimpleSigner


def self_made_ca() -> SelfMadeCa:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Self-made CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mallory Forger")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    der = serialization.Encoding.DER
    key = leaf_key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(leaf.public_bytes(der)),
        signing_key=asn1_keys.PrivateKeyInfo.load(key),
        cert_registry=SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(ca.public_bytes(der))]),
    )
    return SelfMadeCa(ca_pem=ca.public_bytes(serialization.Encoding.PEM), signer=signer)


def text_stream(text: str, *, y: int = 700) -> generic.StreamObject:
    return generic.StreamObject(stream_data=f"BT /F1 24 Tf 72 {y} Td ({text}) Tj ET".encode("latin-1"))


def incremental(source: Path, out: Path, change: Any) -> Path:
    """Append one incremental update made by ``change(writer)`` (the signed bytes stay)."""
    with source.open("rb") as stream:
        writer = IncrementalPdfFileWriter(stream, strict=False)
        change(writer)
        buffer = io.BytesIO()
        writer.write(buffer)
    out.write_bytes(buffer.getvalue())
    return out


__all__ = ["make_pdf"]
