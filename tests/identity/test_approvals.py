"""The approval protocol's rules, in process: verification codes, expiry, single answer."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from identity import approvals, citizens
from identity.certificates import CertificateChecker
from identity.errors import ApprovalRejected
from keys.models import utcnow
from tests.conftest import ServiceEnv
from tests.identity.test_login_with_app import fresh_code


@pytest.mark.parametrize(
    ("hash_value", "code"),
    [
        (hashlib.sha256(b"Hello World!").digest(), "7712"),
        (hashlib.sha256(b"Go ahead, make my day.").digest(), "7782"),
        (hashlib.sha256(b"You're gonna need a bigger boat.").digest(), "1464"),
        (hashlib.sha256(b"Say 'hello' to my little friend!").digest(), "4240"),
        (bytes([0x1B, 0xBB]), "4555"),
    ],
)
def test_verification_code_vectors(hash_value: bytes, code: str) -> None:
    assert approvals.verification_code(hash_value) == code


def test_expiry_and_refusal(service_env: ServiceEnv) -> None:
    session, keystore, _pki = service_env.open()
    try:
        registered = citizens.register(
            session, personal_code=fresh_code(), given_name="A", family_name="B", actor="test"
        ).citizen
        registered.state = "active"
        session.add(registered)
        session.commit()
        now = utcnow()
        request = approvals.open_request(
            session,
            citizen=registered,
            kind=approvals.ApprovalKind.AUTH,
            hash_value=hashlib.sha256(b"x").digest(),
            hash_algorithm="sha256",
            display_text="Log in",
            binding=None,
            lifetime=timedelta(minutes=10),
            now=now,
        )
        # The lifetime is capped at two minutes.
        assert request.expires_at - request.created_at <= timedelta(seconds=121)
        assert approvals.pending_for(session, registered, now=now) == [request]
        later = now + timedelta(seconds=121)
        assert approvals.for_citizen(session, registered, request.public_id, now=later).state == "expired"
        with pytest.raises(ApprovalRejected, match="expired"):
            approvals.refuse(session, registered, request.public_id, now=later)
        with pytest.raises(ApprovalRejected):
            approvals.open_request(
                session,
                citizen=registered,
                kind=approvals.ApprovalKind.SIGN,
                hash_value=b"short",
                hash_algorithm="sha256",
                display_text="x",
                binding=None,
            )
    finally:
        session.close()
        keystore.close()


def test_an_answer_after_the_expiry_expires_the_request(service_env: ServiceEnv) -> None:
    """The app answers a request that is still stored pending but whose time is up: refused
    before any certificate check, and the request is expired in the database."""
    session, keystore, _pki = service_env.open()
    try:
        registered = citizens.register(
            session, personal_code=fresh_code(), given_name="A", family_name="B", actor="test"
        ).citizen
        registered.state = "active"
        session.add(registered)
        session.commit()
        now = utcnow()
        request = approvals.open_request(
            session,
            citizen=registered,
            kind=approvals.ApprovalKind.AUTH,
            hash_value=hashlib.sha256(b"late").digest(),
            hash_algorithm="sha256",
            display_text="Log in",
            binding=None,
            now=now,
        )

        def never_asked(*_args: object) -> bytes:
            raise AssertionError("an expired request's answer reached the certificate checks")

        checker = CertificateChecker(citizen_ca=b"", ask_ocsp=never_asked)
        with pytest.raises(ApprovalRejected, match="^the request is already expired$"):
            approvals.check_answer(
                session,
                registered,
                request.public_id,
                certificate=b"",
                signature=b"",
                checker=checker,
                now=now + timedelta(seconds=121),
            )
        session.refresh(request)
        assert request.state == "expired"
    finally:
        session.close()
        keystore.close()
