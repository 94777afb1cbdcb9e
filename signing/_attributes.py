"""The CMS signed attributes of a PAdES signature, built once per signer certificate.

pyHanko builds the attributes (content type, message digest, signing-certificate-v2,
CMS algorithm protection) with asn1crypto, which costs about 10 ms a signature. Only the
message digest changes between two signatures with the same certificate and digest
algorithm (PAdES puts the signing time in the signature dictionary, not here), so the
DER is built once with a random stand-in digest and the real digest is put in its
place afterwards. ``Prepared.check`` then parses the result and checks the digest.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from threading import Lock

from asn1crypto import cms
from pyhanko.sign import signers

from keys.keystore import HashAlgorithm

_CACHE_SIZE = 256
_CONSTANT = frozenset(
    {"content_type", "message_digest", "signing_certificate_v2", "cms_algorithm_protection"}
)
"""Attributes whose value does not depend on the time of signing (the digest is replaced)."""

_templates: OrderedDict[bytes, tuple[bytes, bytes]] = OrderedDict()
_lock = Lock()


async def async_signed_attributes(
    signer: Callable[[], signers.ExternalSigner],
    certificate: bytes,
    hash_algorithm: HashAlgorithm,
    document_digest: bytes,
) -> bytes:
    """DER of the signed attributes over ``document_digest``, exactly as pyHanko's
    ``signer().signed_attrs(..., use_pades=True)`` would encode them. ``signer`` is
    called only when the template for this certificate is not there yet."""
    key = hashlib.sha256(hash_algorithm.value.encode() + b"\0" + certificate).digest()
    with _lock:
        template = _templates.get(key)
        if template is not None:
            _templates.move_to_end(key)
    if template is None:
        stand_in = secrets.token_bytes(len(document_digest))
        attributes = await signer().signed_attrs(stand_in, hash_algorithm.value, use_pades=True)
        der = bytes(attributes.dump())
        if der.count(stand_in) != 1 or not _constant(attributes):
            # Something here varies from one signature to the next: build it every time.
            built = await signer().signed_attrs(document_digest, hash_algorithm.value, use_pades=True)
            return bytes(built.dump())
        at = der.index(stand_in)
        template = (der[:at], der[at + len(stand_in) :])
        with _lock:
            _templates[key] = template
            while len(_templates) > _CACHE_SIZE:
                _templates.popitem(last=False)
    prefix, suffix = template
    return prefix + document_digest + suffix


def _constant(attributes: cms.CMSAttributes) -> bool:
    return all(attribute["type"].native in _CONSTANT for attribute in attributes)
