"""The QR token: round trip, size on paper, and every way a token can be wrong.

The witnesses: the ``qrcode`` library measures the QR version the way pyHanko's stamp
builds it, ``zxingcpp`` decodes the rendered picture, ``pycose`` (in test_qr_api.py)
checks tokens from the published keys alone.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
import qrcode
import zxingcpp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from PIL import Image
from sqlmodel import Session

from keys.keystore import KeyStore
from keys.pki import Pki
from tests.conftest import ServiceEnv
from verification import (
    DocumentKind,
    DocumentState,
    InvalidQrClaims,
    InvalidQrInput,
    MalformedQrToken,
    QrDocumentAlreadyRevoked,
    QrDocumentNotFound,
    QrKeys,
    QrSignatureInvalid,
    UnknownQrKey,
    UnsupportedQrAlgorithm,
    VerificationError,
    document_status,
    issue_token,
    load_qr_keys,
    qr_url,
    read_token,
    record_document,
    revoke_document,
)
from verification.qr import decode_token, encode_token

PROD_URL = "https://eid.example.ee"
NAME_60 = "Õnnela-Täheke Ülle-Mõõtja-Šveitsi Žürii-Väärikas Õunapuu-Käo"
ORG_80 = "Põllumajanduse Registrite ja Informatsiooni Ameti Õiguslike Küsimuste Osakond OÜ"
TITLE_120 = (
    "Otsus nr 2026-ÕK/4711 põllumajandustootja ühtse pindalatoetuse ning keskkonnasõbraliku majandamise "
    "toetuse määramisest.."
)


@dataclass
class Sealer:
    session: Session
    keystore: KeyStore
    pki: Pki
    keys: QrKeys

    def token(self, *, public_url: str = PROD_URL, **overrides: object) -> str:
        fields: dict[str, object] = {
            "kind": DocumentKind.SIGNATURE,
            "document_id": os.urandom(16),
            "document_sha256": os.urandom(32),
            "display_name": "Mari-Liis Männik",
            "issued_at": datetime.now(UTC),
        }
        fields.update(overrides)
        return issue_token(self.keystore, self.pki.qr_seal, public_url=public_url, **fields)  # type: ignore[arg-type]

    def sign_cose(self, protected: dict[int, object], payload: object) -> str:
        """A token sealed with our real key around arbitrary header and payload."""
        protected_bytes = cbor2.dumps(protected)
        payload_bytes = cbor2.dumps(payload)
        tbs = cbor2.dumps(["Signature1", protected_bytes, b"", payload_bytes])
        r, s = utils.decode_dss_signature(self.keystore.sign(self.pki.qr_seal.key_id, tbs))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return encode_token(cbor2.dumps(cbor2.CBORTag(18, [protected_bytes, {}, payload_bytes, signature])))


@pytest.fixture(scope="module")
def sealer(service_env: ServiceEnv) -> Iterator[Sealer]:
    session, keystore, pki = service_env.open()
    try:
        yield Sealer(session=session, keystore=keystore, pki=pki, keys=load_qr_keys(session))
    finally:
        session.rollback()
        session.close()
        keystore.close()


def _parts(token: str) -> list[object]:
    item = cbor2.loads(decode_token(token))
    assert isinstance(item, cbor2.CBORTag) and item.tag == 18
    return list(item.value)


def _rebuild(parts: list[object]) -> str:
    return encode_token(cbor2.dumps(cbor2.CBORTag(18, parts)))


def _kid(sealer: Sealer) -> bytes:
    return sealer.keys.keys[0].kid


def _payload(**changes: object) -> dict[int, object]:
    payload: dict[int, object] = {1: 1, 2: os.urandom(16), 3: os.urandom(32), 4: "Name", 5: 1_790_000_000}
    payload.update({int(key[1:]): value for key, value in changes.items()})
    return {key: value for key, value in payload.items() if value is not None}


# Round trip.


def test_signature_token_round_trip(sealer: Sealer) -> None:
    document_id, digest = os.urandom(16), os.urandom(32)
    when = datetime.now(UTC).replace(microsecond=123456)
    token = sealer.token(document_id=document_id, document_sha256=digest, issued_at=when)
    claims = read_token(token, sealer.keys)
    assert claims.kind is DocumentKind.SIGNATURE
    assert claims.document_id == document_id and claims.document_sha256 == digest
    assert claims.display_name == "Mari-Liis Männik"
    assert claims.issued_at == when.replace(microsecond=0)
    assert claims.organisation is None and claims.title is None
    assert claims.kid == _kid(sealer) and len(claims.kid) == 8
    assert token.isdigit()


def test_seal_token_round_trip(sealer: Sealer) -> None:
    token = sealer.token(
        kind=DocumentKind.SEAL, display_name="Tax Board e-seal", organisation="Tax Board", title="Decision 17"
    )
    claims = read_token(token, sealer.keys)
    assert (claims.kind, claims.organisation, claims.title) == (DocumentKind.SEAL, "Tax Board", "Decision 17")


def test_kid_is_sha256_of_the_seal_certificate(sealer: Sealer) -> None:
    import hashlib

    protected = cbor2.loads(_parts(sealer.token())[0])  # type: ignore[arg-type]
    assert protected == {1: -7, 4: hashlib.sha256(sealer.pki.qr_seal.certificate.dump()).digest()[:8]}


def test_no_personal_code_in_the_token(sealer: Sealer) -> None:
    payload = cbor2.loads(_parts(sealer.token())[2])  # type: ignore[arg-type]
    assert set(payload) == {1, 2, 3, 4, 5}
    assert "49403136526" not in repr(payload)


# Size on paper: version 12-M at most, and the picture decodes to the same URL.


def _version(url: str) -> int:
    # Exactly how pyHanko's QR stamp builds the code (pyhanko/stamp/qr.py).
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(url)
    code.make()
    return int(code.version)


def _scan(url: str) -> str:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=4, border=4)
    code.add_data(url)
    buffer = io.BytesIO()
    code.make_image().save(buffer, format="PNG")
    # QR codes only: zxing-cpp now and then also reports a phantom symbol of another
    # format in a QR picture, or the same QR twice (seen once in a CI run).
    results = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(buffer.getvalue())), formats=zxingcpp.BarcodeFormat.QRCode
    )
    texts = {str(result.text) for result in results}
    assert len(texts) == 1, texts
    return texts.pop()


@pytest.mark.parametrize(
    "public_url", [PROD_URL, "http://127.0.0.1:8000", "https://e-teenindus.riigiportaal.example.gov.ee/eid"]
)
@pytest.mark.parametrize("kind", ["signature", "seal"])
def test_worst_case_url_fits_version_12_m_and_scans(sealer: Sealer, public_url: str, kind: str) -> None:
    extra = {"kind": DocumentKind.SEAL, "organisation": ORG_80, "title": TITLE_120} if kind == "seal" else {}
    assert (len(NAME_60), len(ORG_80), len(TITLE_120)) == (60, 80, 120)
    token = sealer.token(public_url=public_url, display_name=NAME_60, **extra)
    url = qr_url(public_url, token)
    version = _version(url)
    print(f"{kind} at {public_url}: {len(url)} characters, QR version {version}-M")
    assert version <= 12
    assert _scan(url) == url
    claims = read_token(token, sealer.keys)
    shown = [claims.display_name, claims.organisation, claims.title]
    for text, full in zip(shown, [NAME_60, ORG_80, TITLE_120], strict=True):
        if text is None:
            assert kind == "signature"
            continue
        # Shortened texts keep their start and say so with "…".
        assert text == full or (text.endswith("…") and full.startswith(text[:-1].rstrip()))


def test_short_texts_are_not_shortened(sealer: Sealer) -> None:
    token = sealer.token(display_name=NAME_60)
    assert read_token(token, sealer.keys).display_name == NAME_60


def test_a_public_url_too_long_for_any_token_is_refused(sealer: Sealer) -> None:
    with pytest.raises(InvalidQrInput, match="too long"):
        sealer.token(public_url="https://example.org/" + "p" * 400)


@pytest.mark.parametrize(
    "overrides",
    [
        {"document_id": b"short"},
        {"document_sha256": b"\x00" * 20},
        {"display_name": "   "},
        {"display_name": "x" * 201},
        {"organisation": "Org"},  # a signature has no organisation
        {"kind": DocumentKind.SEAL, "title": "T"},  # a seal needs its organisation
    ],
)
def test_unusable_input_is_refused(sealer: Sealer, overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidQrInput):
        sealer.token(**overrides)


# Tampering.


def test_flipped_signature_bit_is_rejected(sealer: Sealer) -> None:
    parts = _parts(sealer.token())
    signature = bytearray(parts[3])  # type: ignore[arg-type]
    signature[10] ^= 0x01
    parts[3] = bytes(signature)
    with pytest.raises(QrSignatureInvalid):
        read_token(_rebuild(parts), sealer.keys)


def test_altered_payload_is_rejected(sealer: Sealer) -> None:
    parts = _parts(sealer.token())
    payload = cbor2.loads(parts[2])  # type: ignore[arg-type]
    payload[4] = "Someone Else"
    parts[2] = cbor2.dumps(payload)
    with pytest.raises(QrSignatureInvalid):
        read_token(_rebuild(parts), sealer.keys)


def test_unknown_kid_is_rejected(sealer: Sealer) -> None:
    parts = _parts(sealer.token())
    parts[0] = cbor2.dumps({1: -7, 4: b"\x00" * 8})
    with pytest.raises(UnknownQrKey):
        read_token(_rebuild(parts), sealer.keys)


def test_token_sealed_by_another_key_under_our_kid_is_rejected(sealer: Sealer) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    protected = cbor2.dumps({1: -7, 4: _kid(sealer)})
    payload = cbor2.dumps(_payload())
    der = forger.sign(cbor2.dumps(["Signature1", protected, b"", payload]), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    token = _rebuild([protected, {}, payload, r.to_bytes(32, "big") + s.to_bytes(32, "big")])
    with pytest.raises(QrSignatureInvalid):
        read_token(token, sealer.keys)


@pytest.mark.parametrize("alg", [None, -8, -35, 5, "ES256", "none"])  # none, EdDSA, ES384, HS256
def test_algorithms_other_than_es256_are_rejected(sealer: Sealer, alg: object) -> None:
    parts = _parts(sealer.token())
    parts[0] = cbor2.dumps({4: _kid(sealer)} if alg is None else {1: alg, 4: _kid(sealer)})
    with pytest.raises(UnsupportedQrAlgorithm):
        read_token(_rebuild(parts), sealer.keys)


def test_token_before_its_key_existed_is_rejected(sealer: Sealer) -> None:
    early = sealer.pki.qr_seal.certificate.not_valid_before - timedelta(days=1)
    with pytest.raises(QrSignatureInvalid, match="validity"):
        read_token(sealer.token(issued_at=early), sealer.keys)


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2, 3],
        _payload(k1=3),  # no such type
        _payload(k1=True),  # bool is not an integer here
        _payload(k2=b"\x00" * 15),
        _payload(k3="not bytes"),
        _payload(k4=""),
        _payload(k4=None),
        _payload(k5=-1),
        _payload(k5=1.5),
        _payload(k6="Org"),  # organisation on a signature
        _payload(k1=2, k6="Org"),  # a seal without a title
        _payload(k9="extra"),
    ],
)
def test_sealed_but_misshapen_payloads_are_rejected(sealer: Sealer, payload: object) -> None:
    token = sealer.sign_cose({1: -7, 4: _kid(sealer)}, payload)
    with pytest.raises(InvalidQrClaims):
        read_token(token, sealer.keys)


def test_extra_protected_header_is_rejected(sealer: Sealer) -> None:
    token = sealer.sign_cose({1: -7, 4: _kid(sealer), 2: [99]}, _payload())
    with pytest.raises(MalformedQrToken):
        read_token(token, sealer.keys)


# Garbage: always a VerificationError, never anything else.


def _garbage(sealer: Sealer) -> list[str]:
    good = sealer.token()
    cose = decode_token(good)
    return [
        "",
        "0",
        "0" + good,
        "abc",
        "１２３",  # full-width digits: str.isdigit() says yes, we say no
        "9" * 5000,
        good[:-3],
        encode_token(cose[: len(cose) // 2]),  # truncated CBOR
        encode_token(cose + b"\x00"),  # trailing byte
        encode_token(cbor2.dumps([1, 2, 3, 4])),  # untagged
        encode_token(cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"", []]))),
        encode_token(cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"", b""]))),
        encode_token(cbor2.dumps(cbor2.CBORTag(18, [b"\xa1\x01", {}, b"", b"x" * 64]))),
        encode_token(cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps([1]), {}, b"", b"x" * 64]))),
        encode_token(cbor2.dumps(cbor2.CBORTag(18, [b"", {4: b"k"}, b"", b""]))),
        encode_token(b"\x9f" * 400),  # deep indefinite nesting
        encode_token(b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff"),  # absurd declared length
        str(int.from_bytes(b"\x02" + cose, "big")),  # wrong marker byte
    ]


def test_garbage_tokens_raise_verification_errors_only(sealer: Sealer) -> None:
    for token in _garbage(sealer):
        with pytest.raises(VerificationError):
            read_token(token, sealer.keys)


def test_random_bytes_raise_verification_errors_only(sealer: Sealer) -> None:
    rng = random.Random(6)
    cose = decode_token(sealer.token())
    for _ in range(500):
        mutated = bytearray(cose)
        for _ in range(rng.randint(1, 4)):
            index = rng.randrange(len(mutated))
            mutated[index] ^= rng.randrange(1, 256)  # never the same byte again
        if mutated == cose:  # two changes at one place can cancel out
            continue
        for candidate in (bytes(mutated), rng.randbytes(rng.randint(1, 300))):
            with pytest.raises(VerificationError):
                read_token(encode_token(candidate), sealer.keys)


# The status table.


def test_record_status_and_revoke(sealer: Sealer) -> None:
    session = sealer.session
    document_id = os.urandom(16)
    recorded = record_document(
        session,
        document_id=document_id,
        kind=DocumentKind.SEAL,
        document=[b"%PDF-1.7 ", b"body"],
        display_name="Tax Board e-seal",
        organisation=ORG_80,
        title=TITLE_120,
        issued_at=datetime.now(UTC),
    )
    assert recorded.document_length == 13 and recorded.state is DocumentState.VALID
    status = document_status(session, document_id.hex().upper())
    assert (status.title, status.organisation) == (TITLE_120, ORG_80)  # kept in full
    revoked = revoke_document(session, document_id.hex(), "  issued   in error ")
    assert revoked.state is DocumentState.REVOKED and revoked.revocation_reason == "issued in error"
    assert revoked.revoked_at is not None
    with pytest.raises(QrDocumentAlreadyRevoked):
        revoke_document(session, document_id.hex(), "again")
    with pytest.raises(InvalidQrInput, match="recorded already"):
        record_document(
            session,
            document_id=document_id,
            kind=DocumentKind.SIGNATURE,
            document=b"x",
            display_name="x",
            issued_at=datetime.now(UTC),
        )
    session.rollback()
    with pytest.raises(QrDocumentNotFound):
        document_status(session, document_id.hex())  # nothing was committed: the caller owns that


@pytest.mark.parametrize("document_id", ["", "zz" * 16, "ab" * 15, "ab" * 17, "../../etc"])
def test_bad_document_ids_are_refused(sealer: Sealer, document_id: str) -> None:
    with pytest.raises(InvalidQrInput):
        document_status(sealer.session, document_id)
