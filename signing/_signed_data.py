"""The CMS SignedData of a B-B signature, put together from DER parts built once per signer.

pyHanko builds the ``SignedData`` with asn1crypto on every signature (about 1 ms). For
one signer certificate, chain and digest algorithm, everything but the signed
attributes and the signature value is the same every time: version, digest algorithms,
encapsulated content info, certificates, and the signer info's identifier and
algorithms. Those parts are taken once from a ``SignedData`` that pyHanko builds with
stand-in values, and the two that change are put between them. A test compares the
result with pyHanko's own for both curves and RSA.

Only for signatures without unsigned attributes (B-B); B-T and up get their time stamp
through pyHanko.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from asn1crypto import cms
from pyhanko.sign import signers

from keys._der import tlv
from keys.keystore import HashAlgorithm

_CACHE_SIZE = 256
_SIGNED_DATA_OID = bytes.fromhex("06092a864886f70d010702")  # 1.2.840.113549.1.7.2, DER


@dataclass(frozen=True, slots=True)
class _Parts:
    """DER pieces of pyHanko's ``SignedData`` that do not change between signatures."""

    before_signer_infos: bytes
    """version, digestAlgorithms, encapContentInfo, certificates (each as encoded)."""
    signer_info_head: bytes
    """SignerInfo version, sid and digestAlgorithm."""
    signature_algorithm: bytes
    """SignerInfo signatureAlgorithm."""


_parts: OrderedDict[bytes, _Parts] = OrderedDict()
_lock = threading.Lock()


async def async_signed_data(
    signer: Callable[[], signers.ExternalSigner],
    *,
    certificates: bytes,
    hash_algorithm: HashAlgorithm,
    signed_attributes: bytes,
    signature: bytes,
) -> bytes:
    """DER of the ContentInfo pyHanko's ``async_sign_prescribed_attributes`` would make
    for ``signer()`` (its certificate registry as given), without a time stamp.
    ``certificates`` identifies the signer and chain (e.g. their DER, joined); ``signer``
    is called only the first time."""
    key = hashlib.sha256(hash_algorithm.value.encode() + b"\0" + certificates).digest()
    with _lock:
        parts = _parts.get(key)
        if parts is not None:
            _parts.move_to_end(key)
    if parts is None:
        parts = await _build_parts(signer(), hash_algorithm, signed_attributes)
        with _lock:
            _parts[key] = parts
            while len(_parts) > _CACHE_SIZE:
                _parts.popitem(last=False)
    # signedAttrs [0] IMPLICIT: the SET OF that was signed, retagged.
    attributes = b"\xa0" + signed_attributes[1:]
    signer_info = tlv(
        0x30, parts.signer_info_head + attributes + parts.signature_algorithm + tlv(0x04, signature)
    )
    signed_data = tlv(0x30, parts.before_signer_infos + tlv(0x31, signer_info))
    return tlv(0x30, _SIGNED_DATA_OID + tlv(0xA0, signed_data))


async def _build_parts(
    signer: signers.ExternalSigner, hash_algorithm: HashAlgorithm, signed_attributes: bytes
) -> _Parts:
    stand_in = signers.ExternalSigner(
        signer.signing_cert,
        signer.cert_registry,
        signature_value=secrets.token_bytes(64),
        signature_mechanism=signer.signature_mechanism,
    )
    built = await stand_in.async_sign_prescribed_attributes(
        hash_algorithm.value, signed_attrs=cms.CMSAttributes.load(signed_attributes)
    )
    signed_data = built["content"]
    info = signed_data["signer_infos"][0]
    return _Parts(
        before_signer_infos=b"".join(
            signed_data[name].dump()
            for name in ("version", "digest_algorithms", "encap_content_info", "certificates")
        ),
        signer_info_head=b"".join(info[name].dump() for name in ("version", "sid", "digest_algorithm")),
        signature_algorithm=info["signature_algorithm"].dump(),
    )
