"""The signing tests' world: our real PKI, OCSP responder, TSA and CRLs, asked in process.

Built the way ``api/services.py`` builds them, once per test session. The witnesses
(poppler's ``pdfsig`` with an NSS database trusting our root, ``openssl cms``) get the
root certificate from ``root_pem``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import subprocess
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from asn1crypto import pem
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from sqlmodel import Session, select

from keys import crl
from keys.issuance import Purpose, issue_citizen_certificate
from keys.keystore import KeyStore
from keys.models import CertificateRecord, utcnow
from keys.ocsp import OcspResponder, StatusRow
from keys.pki import Pki
from keys.profiles import CitizenSubject
from keys.tsa import TimeStampAuthority
from signing import InProcessRevocation, InProcessTimeStamper, Prepared, async_finish, async_prepare
from tests.conftest import IssuedCitizen, ServiceEnv, issue_citizen

T = TypeVar("T")
OURS: Any = object()
"""``Trust.finish``'s default time-stamping authority and validation data: ours."""
CURVES = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}


@dataclass
class Trust:
    """Our trust services, as the server holds them."""

    env: ServiceEnv
    session: Session
    keystore: KeyStore
    pki: Pki
    ocsp: OcspResponder
    tsa: TimeStampAuthority

    @property
    def root_der(self) -> bytes:
        return bytes(self.pki.root.certificate.dump())

    @property
    def chain(self) -> list[bytes]:
        """What enrolment hands the app: Citizen CA, then the root."""
        return [bytes(self.pki.citizen_ca.certificate.dump()), self.root_der]

    def timestamper(self) -> InProcessTimeStamper:
        return InProcessTimeStamper(lambda der: self.tsa.respond(der, now=utcnow()).der)

    def revocation(self) -> InProcessRevocation:
        pki = self.pki
        return InProcessRevocation(
            trust_roots=(self.root_der,),
            certificates=tuple(
                bytes(cert.dump())
                for cert in (pki.citizen_ca.certificate, pki.tsa.certificate, pki.ocsp_responder.certificate)
            ),
            ocsp_issuers=(bytes(pki.citizen_ca.certificate.dump()),),
            ask_ocsp=lambda der: self.ocsp.respond(der, now=utcnow()).der,
            crls=self.current_crls,
        )

    def revocation_by_status(self) -> InProcessRevocation:
        """``revocation`` with the signer's status read where the responder reads it
        (``signer_status``), as the service wires it (``api.signing_flow``)."""
        return dataclasses.replace(self.revocation(), signer_status=self.ocsp.status)

    def prepare(self, source: Path, workdir: Path, signer: bytes, **options: Any) -> Prepared:
        """``async_prepare`` as the service calls it: our chain unless ``chain`` is given;
        ``workdir`` is made when missing."""
        workdir.mkdir(exist_ok=True)
        options.setdefault("chain", self.chain)
        return run(async_prepare(source, workdir, signer_certificate=signer, **options))

    def finish(
        self,
        prepared: Prepared,
        signature: bytes,
        out: Path,
        *,
        timestamper: Any = OURS,
        validation: Any = OURS,
    ) -> Path:
        """``async_finish`` with our TSA and our revocation data unless others are given
        (``timestamper=None``: no TSA)."""
        return run(
            async_finish(
                prepared,
                signature,
                out=out,
                timestamper=self.timestamper() if timestamper is OURS else timestamper,
                validation=self.revocation() if validation is OURS else validation,
            )
        )

    def current_crls(self) -> list[bytes]:
        return [
            crl.current(self.session, self.keystore, issuer).der
            for issuer in (self.pki.root, self.pki.citizen_ca)
        ]

    def status(self, serial: str) -> StatusRow | None:
        """Like ``Services._certificate_status``: a fresh read, so revocations show at once."""
        with Session(self.env.engine) as session:
            row = session.exec(
                select(CertificateRecord)
                .where(CertificateRecord.serial == serial)
                .where(CertificateRecord.issuer == self.pki.citizen_ca.name)
            ).first()
        if row is None:
            return None
        return StatusRow(
            state=row.state, revoked_at=row.revoked_at, reason=row.revocation_reason, revision=row.revision
        )


@pytest.fixture(scope="session")
def trust(service_env: ServiceEnv) -> Iterator[Trust]:
    session, keystore, pki = service_env.open()
    holder: list[Trust] = []
    ocsp = OcspResponder(
        issuer=pki.citizen_ca,
        signer=pki.ocsp_responder,
        keystore=keystore,
        lookup=lambda serial: holder[0].status(serial),
    )
    tsa = TimeStampAuthority(identity=pki.tsa, keystore=keystore, policy=pki.config.policies.tsa)
    holder.append(Trust(env=service_env, session=session, keystore=keystore, pki=pki, ocsp=ocsp, tsa=tsa))
    yield holder[0]
    session.close()
    keystore.close()


@pytest.fixture(scope="session")
def signers(service_env: ServiceEnv) -> dict[str, IssuedCitizen]:
    """One citizen signing certificate per curve, shared by the tests that do not revoke."""
    return {name: issue_citizen(service_env, Purpose.SIGNING, curve=curve) for name, curve in CURVES.items()}


@pytest.fixture(scope="session")
def root_pem(trust: Trust, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "root.pem"
    path.write_bytes(pem.armor("CERTIFICATE", trust.root_der))
    return path


@pytest.fixture(scope="session")
def nss_db(root_pem: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An NSS database that trusts our root. pdfsig checks the signer for
    certificateUsageEmailSigner, so the root needs the email trust bit ("C,C,C");
    with "C,," poppler says "Certificate issuer isn't Trusted"."""
    directory = tmp_path_factory.mktemp("nss")
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{directory}"], check=True)
    subprocess.run(
        ["certutil", "-A", "-n", "eid-root", "-t", "C,C,C", "-i", str(root_pem), "-d", f"sql:{directory}"],
        check=True,
    )
    return f"sql:{directory}"


def sign_digest(citizen: IssuedCitizen, prepared: Prepared) -> bytes:
    """What the citizen's app does: ECDSA over ``digest_to_sign`` as a digest."""
    algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}[prepared.hash_algorithm.value]
    return citizen.private_key.sign(prepared.digest_to_sign, ec.ECDSA(utils.Prehashed(algorithm)))


def make_pdf(
    path: Path,
    *,
    pages: int = 1,
    text: str = "Kõik inimesed sünnivad vabadena.",
    password: str | None = None,
    media_box: tuple[int, int, int, int] = (0, 0, 595, 842),
) -> Path:
    """A small PDF (A4 unless told) with a line of text on each page, encrypted if
    ``password`` is given."""
    writer = PdfFileWriter()
    font = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Font"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
            generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
            generic.pdf_name("/Encoding"): generic.pdf_name("/WinAnsiEncoding"),
        }
    )
    resources = generic.DictionaryObject(
        {
            generic.pdf_name("/Font"): generic.DictionaryObject(
                {generic.pdf_name("/F1"): writer.add_object(font)}
            )
        }
    )
    for number in range(1, pages + 1):
        content = f"BT /F1 14 Tf 72 760 Td ({text} {number}) Tj ET".encode("cp1252")
        stream = writer.add_object(generic.StreamObject(stream_data=content))
        writer.insert_page(PageObject(contents=stream, media_box=media_box, resources=resources))
    if password is not None:
        writer.encrypt(password)
    buffer = io.BytesIO()
    writer.write(buffer)
    path.write_bytes(buffer.getvalue())
    return path


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one of the async signing functions from a synchronous test."""
    return asyncio.run(coro)


def issue_signing_certificate(
    trust: Trust, public_key: Any, *, now: datetime | None = None, lifetime: timedelta | None = None
) -> bytes:
    """A Citizen CA signing certificate (DER) for ``public_key`` (any key type), issued
    ``now`` (default: the present) for ``lifetime`` (default: the profile's)."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    options: dict[str, Any] = {"now": now} if now is not None else {}
    if lifetime is not None:
        options["lifetime"] = lifetime
    record = issue_citizen_certificate(
        trust.session,
        trust.keystore,
        trust.pki,
        subject=CitizenSubject(
            country="EE", given_name="Jaan", family_name="Tamm", personal_code="38001085718"
        ),
        purpose=Purpose.SIGNING,
        public_key_der=spki,
        **options,
    )
    assert record.der is not None
    return record.der
