"""The approval protocol's rules, in process: verification codes, expiry, single answer."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from identity import approvals, citizens
from identity.errors import ApprovalRejected
from keys.dbapi import Tx
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
            Tx(session),
            citizen=registered,
            kind=approvals.ApprovalKind.AUTH,
            hash_value=hashlib.sha256(b"x").digest(),
            hash_algorithm="sha256",
            display_text="Log in",
            binding=None,
            lifetime=timedelta(minutes=10),
            now=now,
        )
        session.commit()
        # The lifetime is capped at two minutes.
        assert request.expires_at - request.created_at <= timedelta(seconds=121)
        assert approvals.pending_for(session, registered, now=now) == [request]
        later = now + timedelta(seconds=121)
        assert approvals.for_citizen(session, registered, request.public_id, now=later).state == "expired"
        with pytest.raises(ApprovalRejected, match="expired"):
            approvals.refuse(session, registered, request.public_id, now=later)
        with pytest.raises(ApprovalRejected):
            approvals.open_request(
                Tx(session),
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
