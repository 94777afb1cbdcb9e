"""`eid keys rotate`: a new key signs, the old one stays published until its tokens expire."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jwt
from sqlalchemy import delete, event
from sqlmodel import Session, select

from api import db
from api.services import open_keystore
from identity.oauth import jws
from identity.oauth.keys import RETAIN, KeyRing, ensure_registered
from identity.oauth.models import SigningKeyRecord
from tests.conftest import make_env


def test_rotation(tmp_path: Path) -> None:
    env = make_env(tmp_path / "data")
    env.run_eid("init")
    before = json.loads(env.run_eid("keys", "list", "--json").stdout)
    assert sorted(k["alg"] for k in before) == ["ES256", "RS256"] and all(
        k["retire_at"] is None for k in before
    )

    engine = db.make_engine(env.settings.resolved_database_url)
    keystore = open_keystore(env.settings)
    try:
        ring = KeyRing(lambda: Session(engine), keystore)
        old_kid = ring.active()["RS256"].kid
        token = jws.sign(keystore, ring.active()["RS256"], {"sub": "x"})

        rotated = json.loads(env.run_eid("keys", "rotate", "--json").stdout)
        assert sorted(r["alg"] for r in rotated) == ["ES256", "RS256"]
        ring._loaded_at = 0  # skip the cache interval
        assert ring.active()["RS256"].kid != old_kid
        published = {k.kid for k in ring.published()}
        assert old_kid in published and len(published) == 4
        # A token signed before the rotation still verifies with the published JWKS.
        key = jwt.PyJWK(ring.by_kid(old_kid).jwk)  # type: ignore[union-attr]
        assert jwt.decode(token, key.key, algorithms=["RS256"])["sub"] == "x"

        listed = json.loads(env.run_eid("keys", "list", "--json").stdout)
        retiring = [k for k in listed if k["retire_at"]]
        assert len(retiring) == 2
        # Once the retention has passed, the old keys are no longer published.
        import identity.oauth.keys as keys_module

        real = keys_module.utcnow
        keys_module.utcnow = lambda: real() + RETAIN + timedelta(minutes=1)  # type: ignore[assignment]
        try:
            ring._loaded_at = 0
            assert old_kid not in {k.kid for k in ring.published()}
        finally:
            keys_module.utcnow = real  # type: ignore[assignment]
    finally:
        keystore.close()
        engine.dispose()


def test_instances_starting_together_record_the_first_keys_once(tmp_path: Path) -> None:
    """Another instance records the keys between this one's look and its insert (CI met
    this with two instances on PostgreSQL): the loser takes the winner's rows."""
    env = make_env(tmp_path / "data")
    env.run_eid("init")
    engine = db.make_engine(env.settings.resolved_database_url)
    try:
        with Session(engine) as session:
            session.exec(delete(SigningKeyRecord))  # type: ignore[call-overload]
            session.commit()

        def other_instance_first(session: Session, *_: object) -> None:
            with Session(engine) as other:
                ensure_registered(other)

        with Session(engine) as session:
            event.listen(session, "before_flush", other_instance_first)
            ensure_registered(session)  # its own inserts lose to the other's: no error
        with Session(engine) as session:
            rows = session.exec(select(SigningKeyRecord)).all()
        assert sorted((r.key_id, r.alg) for r in rows) == [("oidc-es256", "ES256"), ("oidc-rs256", "RS256")]
    finally:
        engine.dispose()
