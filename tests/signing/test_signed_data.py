"""The B-B SignedData put together from parts is the one pyHanko builds."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from asn1crypto import cms, x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pyhanko.sign.signers import ExternalSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing._attributes import async_signed_attributes
from signing._cms import hash_algorithm_for
from signing._signed_data import async_signed_data
from tests.conftest import IssuedCitizen
from tests.signing.conftest import Trust, issue_signing_certificate


def _sorted_certificates(content_info: cms.ContentInfo) -> dict[str, Any]:
    """``native`` of the SignedData with its certificates (a SET OF) in a fixed order."""
    native: dict[str, Any] = content_info["content"].native
    native["certificates"] = sorted(native["certificates"], key=repr)
    return native


def _compare(trust: Trust, der: bytes, sign: Any) -> None:
    cert = x509.Certificate.load(der)
    algorithm = hash_algorithm_for(cert)
    ca = trust.pki.citizen_ca.certificate
    signer = ExternalSigner(cert, SimpleCertificateStore.from_certs([ca, trust.pki.root.certificate]))  # type: ignore[no-untyped-call]
    identity = der + bytes(ca.dump())

    async def both(digest: bytes) -> tuple[bytes, bytes]:
        attributes = await async_signed_attributes(lambda: signer, der, algorithm, digest)
        signature = sign(hashlib.new(algorithm.value, attributes).digest())
        ours = await async_signed_data(
            lambda: signer,
            certificates=identity,
            hash_algorithm=algorithm,
            signed_attributes=attributes,
            signature=signature,
        )
        real = ExternalSigner(cert, signer.cert_registry, signature_value=signature)
        theirs = await real.async_sign_prescribed_attributes(
            algorithm.value, signed_attrs=cms.CMSAttributes.load(attributes)
        )
        return ours, bytes(theirs.dump())

    for seed in (b"first", b"second", b"third"):
        ours, theirs = asyncio.run(both(hashlib.new(algorithm.value, seed).digest()))
        parsed = cms.ContentInfo.load(ours, strict=True)
        assert len(ours) == len(theirs)
        assert _sorted_certificates(parsed) == _sorted_certificates(cms.ContentInfo.load(theirs))


@pytest.mark.parametrize("curve", ["p256", "p384"])
def test_ec_signers(trust: Trust, signers: dict[str, IssuedCitizen], curve: str) -> None:
    citizen = signers[curve]
    prehash = {"p256": hashes.SHA256(), "p384": hashes.SHA384()}[curve]
    _compare(
        trust,
        citizen.der,
        lambda digest: citizen.private_key.sign(digest, ec.ECDSA(utils.Prehashed(prehash))),
    )


def test_rsa_signer(trust: Trust) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = issue_signing_certificate(trust, key.public_key())
    _compare(
        trust,
        der,
        lambda digest: key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())),
    )
