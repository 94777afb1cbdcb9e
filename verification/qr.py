"""The QR token: a COSE_Sign1 (RFC 9052) sealed ES256 by the service's QR seal key.

Wire format, outside in:

* the URL ``EID_PUBLIC_URL/v/<token>``;
* ``<token>`` is a decimal number, no leading zero: the big-endian integer of the bytes
  ``0x01 || COSE``. Digits put the QR code in numeric mode (3.33 bits a character, about
  8.03 bits per token byte), denser than base32 in alphanumeric mode (8.8) or base64url
  in byte mode (10.7), and they survive any change of case a scanner or browser makes.
  The leading ``0x01`` keeps leading zero bytes;
* COSE is ``18([protected, {}, payload, signature])`` with the protected header
  ``{1: -7, 4: kid}`` (ES256, kid = first 8 bytes of SHA-256 of the seal certificate's
  DER) and the signature raw ``r || s`` (64 bytes);
* the payload a CBOR map with small integer keys, see ``docs/verification.md``.

The URL has to fit QR version 12 at error correction M, so display texts are shortened
(ending in "…") when they would not fit; the status table keeps them in full.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from keys.keystore import HashAlgorithm, KeyAlgorithm, KeyStore
from keys.pki import ServiceIdentity

from .errors import (
    InvalidQrClaims,
    InvalidQrInput,
    MalformedQrToken,
    QrSignatureInvalid,
    UnknownQrKey,
    UnsupportedQrAlgorithm,
)
from .qr_keys import QrKeys, kid_of

COSE_SIGN1_TAG = 18
ES256 = -7
_ALG, _KID = 1, 4  # COSE header labels (RFC 9052 section 3.1)

# Payload keys: small integers keep the token short; docs/verification.md has the table.
KEY_TYPE, KEY_DOCUMENT_ID, KEY_DOCUMENT_HASH, KEY_NAME, KEY_TIME, KEY_ORGANISATION, KEY_TITLE = range(1, 8)


class DocumentKind(StrEnum):
    """What the QR code stands for."""

    SIGNATURE = "signature"
    SEAL = "seal"


_KIND_CODES = {DocumentKind.SIGNATURE: 1, DocumentKind.SEAL: 2}
_KINDS = {code: kind for kind, code in _KIND_CODES.items()}

# QR version 12 at error correction M holds 290 data codewords (ISO/IEC 18004 table 7).
QR_MAX_VERSION = 12
_DATA_BITS = 290 * 8
# A token longer than this is not one of ours: refuse it before any arithmetic on it.
MAX_TOKEN_DIGITS = 1500
# No display text is cut below this many characters; a public URL so long that the
# token would need it is a configuration error.
_MIN_TEXT = 12
_ELLIPSIS = "…"
MAX_TEXT = {KEY_NAME: 200, KEY_ORGANISATION: 200, KEY_TITLE: 300}


@dataclass(frozen=True, slots=True, kw_only=True)
class QrClaims:
    """What a verified token says."""

    kind: DocumentKind
    """A citizen's signature or an organisation's seal."""
    document_id: bytes
    """128-bit id of the document; its status is looked up by it."""
    document_sha256: bytes
    """SHA-256 of the document as it was before signing."""
    display_name: str
    """Signer's or seal's name (possibly shortened, ending in "…")."""
    issued_at: datetime
    """When the token was made (UTC, whole seconds)."""
    organisation: str | None = None
    """Issuing organisation (seals only; possibly shortened)."""
    title: str | None = None
    """Document title (seals only; possibly shortened)."""
    kid: bytes = b""
    """Key id of the seal key that signed the token (empty before issuing)."""

    @property
    def document_id_hex(self) -> str:
        return self.document_id.hex()


def public_prefix(public_url: str) -> str:
    """``EID_PUBLIC_URL/v/``: what every token URL starts with."""
    return public_url.rstrip("/") + "/v/"


def qr_url(public_url: str, token: str) -> str:
    return public_prefix(public_url) + token


def cose_budget(public_url: str) -> int:
    """How many COSE bytes fit QR version 12-M behind this URL prefix.

    The prefix goes in one byte-mode segment (4-bit mode, 16-bit count for versions
    10-26), the token in one numeric segment (4 + 12 bits, 10 bits per three digits).
    """
    bits = _DATA_BITS - (4 + 16 + 8 * len(public_prefix(public_url).encode("utf-8"))) - (4 + 12)
    digits = 3 * (bits // 10) + {0: 0, 1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 1, 7: 2, 8: 2, 9: 2}[bits % 10]
    size = 0
    # The number is below 2 * 256**size (its first byte is 0x01): at most `digits` digits.
    while 2 * 256 ** (size + 1) <= 10**digits:
        size += 1
    return size


def encode_token(cose: bytes) -> str:
    return str(int.from_bytes(b"\x01" + cose, "big"))


def decode_token(token: str) -> bytes:
    """The COSE bytes of a token; ``MalformedQrToken`` for anything else."""
    if not token:
        raise MalformedQrToken("the token is empty")
    if len(token) > MAX_TOKEN_DIGITS:
        raise MalformedQrToken(f"the token is longer than {MAX_TOKEN_DIGITS} digits")
    if not (token.isascii() and token.isdigit()) or token[0] == "0":
        raise MalformedQrToken("the token must be decimal digits without a leading zero")
    number = int(token)
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    if len(raw) < 2 or raw[0] != 1:
        raise MalformedQrToken("the token does not start with the 0x01 marker byte")
    return raw[1:]


def _payload(
    *,
    kind: DocumentKind,
    document_id: bytes,
    document_sha256: bytes,
    texts: dict[int, str],
    issued_at: datetime,
) -> dict[int, Any]:
    payload: dict[int, Any] = {
        KEY_TYPE: _KIND_CODES[kind],
        KEY_DOCUMENT_ID: document_id,
        KEY_DOCUMENT_HASH: document_sha256,
        KEY_NAME: texts[KEY_NAME],
        KEY_TIME: int(issued_at.timestamp()),
    }
    for key in (KEY_ORGANISATION, KEY_TITLE):
        if key in texts:
            payload[key] = texts[key]
    return payload


def _cose(protected: bytes, payload: bytes, signature: bytes) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))


def _to_be_signed(protected: bytes, payload: bytes) -> bytes:
    """The Sig_structure of RFC 9052 section 4.4, no external AAD."""
    return cbor2.dumps(["Signature1", protected, b"", payload])


def _shorten(texts: dict[int, str]) -> bool:
    """Cut the longest text (in UTF-8 bytes) by about a tenth; False when none can shrink."""
    key = max(texts, key=lambda k: (len(texts[k].encode("utf-8")), -k))
    text = texts[key]
    if len(text) <= _MIN_TEXT:
        return False
    body = text[:-1] if text.endswith(_ELLIPSIS) else text
    keep = max(_MIN_TEXT - 1, len(body) - max(1, len(body) // 10))
    texts[key] = body[:keep].rstrip() + _ELLIPSIS
    return True


def _check_text(value: str | None, key: int, label: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise InvalidQrInput(f"{label} is required")
        return None
    text = " ".join(value.split())  # one line: the token is shown on a page, not a form
    if not text:
        raise InvalidQrInput(f"{label} is empty")
    if len(text) > MAX_TEXT[key]:
        raise InvalidQrInput(f"{label} is longer than {MAX_TEXT[key]} characters")
    return text


def issue_token(
    keystore: KeyStore,
    seal: ServiceIdentity,
    *,
    kind: DocumentKind,
    document_id: bytes,
    document_sha256: bytes,
    display_name: str,
    issued_at: datetime,
    organisation: str | None = None,
    title: str | None = None,
    public_url: str,
) -> str:
    """Seal the claims into a token whose URL under ``public_url`` fits QR version 12-M.

    Texts that would not fit are shortened, longest first, and end in "…".
    """
    if seal.algorithm is not KeyAlgorithm.EC_P256:
        raise InvalidQrInput("the QR seal key must be an EC P-256 key (ES256)")
    if len(document_id) != 16 or len(document_sha256) != 32:
        raise InvalidQrInput("the document id must be 16 bytes and the document hash 32 bytes")
    is_seal = kind is DocumentKind.SEAL
    if not is_seal and (organisation is not None or title is not None):
        raise InvalidQrInput("organisation and title belong to seals only")
    texts = {
        key: text
        for key, text in (
            (KEY_NAME, _check_text(display_name, KEY_NAME, "the display name", required=True)),
            (
                KEY_ORGANISATION,
                _check_text(organisation, KEY_ORGANISATION, "the organisation", required=is_seal),
            ),
            (KEY_TITLE, _check_text(title, KEY_TITLE, "the title", required=is_seal)),
        )
        if text is not None
    }
    kid = kid_of(seal.certificate.dump())
    protected = cbor2.dumps({_ALG: ES256, _KID: kid})
    budget = cose_budget(public_url)
    at = issued_at.astimezone(UTC).replace(microsecond=0)
    while True:
        payload = cbor2.dumps(
            _payload(
                kind=kind, document_id=document_id, document_sha256=document_sha256, texts=texts, issued_at=at
            )
        )
        # The signature is always 64 bytes, so the size is known before signing.
        if len(_cose(protected, payload, bytes(64))) <= budget:
            break
        if not _shorten(texts):
            raise InvalidQrInput(
                f"the public URL is too long: a token does not fit QR version {QR_MAX_VERSION}-M behind it"
            )
    der = keystore.sign(seal.key_id, _to_be_signed(protected, payload), hash_algorithm=HashAlgorithm.SHA256)
    r, s = utils.decode_dss_signature(der)
    return encode_token(_cose(protected, payload, r.to_bytes(32, "big") + s.to_bytes(32, "big")))


def _loads(data: bytes, what: str) -> Any:
    """Decode exactly one CBOR item; trailing bytes or any decoder failure is malformed."""
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # noqa: BLE001 - hostile bytes: every decoder failure means the same
        raise MalformedQrToken(f"the {what} is not valid CBOR") from exc
    if stream.tell() != len(data):
        raise MalformedQrToken(f"the {what} has trailing bytes")
    return item


def _is_int(value: object) -> bool:
    return type(value) is int  # bool is an int subclass: not a CBOR integer here


def _split(cose: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """The four parts of a COSE_Sign1, checked for type; ``(protected, kid, payload, signature)``."""
    item = _loads(cose, "token")
    if not isinstance(item, cbor2.CBORTag) or item.tag != COSE_SIGN1_TAG:
        raise MalformedQrToken("the token is not a tagged COSE_Sign1 (tag 18)")
    parts = item.value
    if not isinstance(parts, list) or len(parts) != 4:
        raise MalformedQrToken("a COSE_Sign1 is an array of four items")
    protected, unprotected, payload, signature = parts
    if not all(type(part) is bytes for part in (protected, payload, signature)):
        raise MalformedQrToken("the protected header, payload and signature must be byte strings")
    if unprotected != {}:
        raise MalformedQrToken("the unprotected header must be empty")
    header = _loads(protected, "protected header")
    if not isinstance(header, dict):
        raise MalformedQrToken("the protected header is not a map")
    if header.get(_ALG) != ES256 or not _is_int(header.get(_ALG)):
        raise UnsupportedQrAlgorithm("the token is not signed with ES256 (COSE alg -7)")
    kid = header.get(_KID)
    if type(kid) is not bytes or set(header) != {_ALG, _KID}:
        raise MalformedQrToken("the protected header must hold exactly alg and kid")
    if len(signature) != 64:
        raise QrSignatureInvalid("an ES256 signature is 64 bytes (r || s)")
    return protected, kid, payload, signature


def _claims(payload: bytes, kid: bytes) -> QrClaims:
    data = _loads(payload, "payload")
    if not isinstance(data, dict) or not all(_is_int(key) for key in data):
        raise InvalidQrClaims("the payload is not a map with integer keys")
    code = data.get(KEY_TYPE)
    kind = _KINDS.get(code) if isinstance(code, int) and not isinstance(code, bool) else None
    if kind is None:
        raise InvalidQrClaims("the payload's type is neither signature (1) nor seal (2)")
    expected = {KEY_TYPE, KEY_DOCUMENT_ID, KEY_DOCUMENT_HASH, KEY_NAME, KEY_TIME}
    if kind is DocumentKind.SEAL:
        expected |= {KEY_ORGANISATION, KEY_TITLE}
    if set(data) != expected:
        raise InvalidQrClaims(f"a {kind.value} token has exactly the keys {sorted(expected)}")
    document_id, digest, when = data[KEY_DOCUMENT_ID], data[KEY_DOCUMENT_HASH], data[KEY_TIME]
    if type(document_id) is not bytes or len(document_id) != 16:
        raise InvalidQrClaims("the document id is not 16 bytes")
    if type(digest) is not bytes or len(digest) != 32:
        raise InvalidQrClaims("the document hash is not 32 bytes")
    if not _is_int(when) or not 0 < when < 2**40:
        raise InvalidQrClaims("the time is not a plausible number of seconds since 1970")
    texts = {key: data.get(key) for key in (KEY_NAME, KEY_ORGANISATION, KEY_TITLE)}
    for key, value in texts.items():
        if key in data and (type(value) is not str or not value or len(value) > MAX_TEXT[key]):
            raise InvalidQrClaims("a display text is empty, too long or not a text string")
    return QrClaims(
        kind=kind,
        document_id=document_id,
        document_sha256=digest,
        display_name=str(texts[KEY_NAME]),
        issued_at=datetime.fromtimestamp(when, UTC),
        organisation=texts[KEY_ORGANISATION],
        title=texts[KEY_TITLE],
        kid=kid,
    )


def read_token(token: str, keys: QrKeys) -> QrClaims:
    """Check a token and return its claims; a ``VerificationError`` subclass for anything wrong.

    The order matters: nothing of the payload is looked at before the signature holds.
    """
    protected, kid, payload, signature = _split(decode_token(token.strip()))
    key = keys.find(kid)
    if key is None:
        raise UnknownQrKey(f"no QR seal key with kid {kid.hex()[:32]} is published")
    der = utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.public_key.verify(der, _to_be_signed(protected, payload), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise QrSignatureInvalid(
            "the token's seal does not verify: it was altered or not made by us"
        ) from None
    claims = _claims(payload, kid)
    if not key.covers(claims.issued_at):
        raise QrSignatureInvalid("the token claims a time outside its seal certificate's validity")
    return claims


def document_hash(data: bytes) -> bytes:
    """SHA-256, the hash the token carries."""
    return hashlib.sha256(data).digest()
