"""Hostile bytes never escape the OCSP responder or the TSA as an exception.

Every mutation of a valid request (flipped bytes, truncations, insertions) must come back
as a protocol answer. Seeded, so a failure is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from asn1crypto import ocsp, tsp

from keys.models import utcnow
from keys.ocsp import OcspResponder
from keys.tsa import TimeStampAuthority
from tests.conftest import ServiceEnv

ROUNDS = 1500


def _mutations(seed_bytes: bytes, rng: random.Random) -> Iterator[bytes]:
    for _ in range(ROUNDS):
        data = bytearray(seed_bytes)
        for _ in range(rng.randint(1, 4)):
            choice = rng.random()
            position = rng.randrange(len(data)) if data else 0
            if choice < 0.5 and data:
                data[position] = rng.randrange(256)
            elif choice < 0.7:
                del data[position:]
            elif choice < 0.9:
                data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            elif data:
                data[position] = data[position] ^ 0x80
        yield bytes(data)


@pytest.fixture(scope="module")
def responders(service_env: ServiceEnv) -> Iterator[tuple[OcspResponder, TimeStampAuthority, bytes, bytes]]:
    session, keystore, pki = service_env.open()
    responder = OcspResponder(
        issuer=pki.citizen_ca, signer=pki.ocsp_responder, keystore=keystore, lookup=lambda serial: None
    )
    authority = TimeStampAuthority(identity=pki.tsa, keystore=keystore, policy=pki.config.policies.tsa)
    import hashlib

    cert_id = ocsp.CertId(
        {
            "hash_algorithm": {"algorithm": "sha1"},
            "issuer_name_hash": hashlib.sha1(pki.citizen_ca.subject.dump()).digest(),
            "issuer_key_hash": hashlib.sha1(
                pki.citizen_ca.certificate.public_key["public_key"].contents[1:]
            ).digest(),
            "serial_number": 12345,
        }
    )
    ocsp_request = ocsp.OCSPRequest(
        {
            "tbs_request": {
                "request_list": [{"req_cert": cert_id}],
                "request_extensions": [{"extn_id": "nonce", "extn_value": b"0123456789abcdef"}],
            }
        }
    ).dump()
    tsa_request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x11" * 32},
            "nonce": 42,
            "cert_req": True,
        }
    ).dump()
    yield responder, authority, ocsp_request, tsa_request
    session.close()
    keystore.close()


def test_ocsp_survives_mutations(responders: tuple[OcspResponder, TimeStampAuthority, bytes, bytes]) -> None:
    responder, _authority, request, _tsa = responders
    assert responder.respond(request, now=utcnow()).status == "successful"
    rng = random.Random(2026)
    statuses = set()
    for body in _mutations(request, rng):
        answer = responder.respond(body, now=utcnow())
        ocsp.OCSPResponse.load(answer.der).native  # noqa: B018 - a well-formed answer
        statuses.add(answer.status)
    assert "malformed_request" in statuses


def test_tsa_survives_mutations(responders: tuple[OcspResponder, TimeStampAuthority, bytes, bytes]) -> None:
    _responder, authority, _ocsp, request = responders
    assert authority.respond(request, now=utcnow()).granted
    rng = random.Random(3161)
    failures = set()
    for body in _mutations(request, rng):
        answer = authority.respond(body, now=utcnow())
        status = tsp.TimeStampResp.load(answer.der)["status"]["status"].native if answer.granted else None
        assert answer.granted == (status == "granted")
        failures.add(answer.failure)
    assert "bad_data_format" in failures
