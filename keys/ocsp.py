"""The OCSP responder (RFC 6960, with the RFC 5019 profile for caching).

Answers for certificates of one issuer (the Citizen CA), signed by a delegated
responder certificate. Requests without a nonce get responses that are reused until
half their validity has passed or the certificate's status changes (the status
``revision`` is part of the cache key), so hot certificates cost one database lookup
and no signature.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from asn1crypto import algos, ocsp

from . import _der as der
from ._x509 import signature_algorithm
from .ca import CertState, Issuer
from .keystore import KeyStore
from .models import as_utc
from .pki import ServiceIdentity

MAX_REQUESTS = 10
MAX_NONCE_OCTETS = 32  # RFC 8954
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GOOD = b"\x80\x00"
_UNKNOWN = b"\x82\x00"
_REASON_CODES = {
    "unspecified": 0,
    "key_compromise": 1,
    "ca_compromise": 2,
    "affiliation_changed": 3,
    "superseded": 4,
    "cessation_of_operation": 5,
    "certificate_hold": 6,
    "privilege_withdrawn": 9,
}
_EXTENDED_REVOKED = der.tlv(0xA1, der.generalized_time(_EPOCH) + der.explicit(0, der.enumerated(6)))
_EXTENDED_REVOKE_EXT = der.sequence(der.oid("1.3.6.1.5.5.7.48.1.9"), der.octet_string(b"\x05\x00"))
_BASIC_OID = der.oid("1.3.6.1.5.5.7.48.1.1")
_HASHES = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusRow:
    """What the database says about one serial."""

    state: str
    """``reserved``, ``issued`` or ``revoked``."""
    revoked_at: datetime | None
    """When it was revoked."""
    reason: str | None
    """RFC 5280 reason name (asn1crypto spelling)."""
    revision: int
    """Bumped on each status change; part of the response cache key."""


Lookup = Callable[[str], StatusRow | None]
"""Finds the status of a serial (lowercase hex) of the responder's issuer."""


def status_name(row: StatusRow | None) -> str:
    """The certStatus our answers give for ``row``: ``good``, ``revoked`` (also for a
    serial reserved but never stored: RFC 6960 "extended revoked") or ``unknown``."""
    if row is None:
        return "unknown"
    return "good" if row.state == CertState.ISSUED.value else "revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class OcspAnswer:
    """A DER OCSPResponse and how it may be cached over HTTP."""

    der: bytes
    """The encoded OCSPResponse."""
    status: str
    """``successful``, ``malformed_request``, ``unauthorized``, ``internal_error``..."""
    this_update: datetime | None = None
    """thisUpdate of the single response, when successful."""
    next_update: datetime | None = None
    """nextUpdate of the single response, when successful."""
    cacheable: bool = False
    """True when the response carries no nonce, so HTTP caches may keep it."""
    http_headers: tuple[tuple[str, str], ...] = ()
    """RFC 5019 caching headers that do not change while the answer is reused
    (``Last-Modified``, ``Expires``, ``ETag``), computed once when signed."""


def error_response(status: str) -> OcspAnswer:
    return OcspAnswer(der=ocsp.OCSPResponse({"response_status": status}).dump(), status=status)


class OcspResponder:
    """Signs OCSP responses for ``issuer`` with the delegated ``signer``."""

    def __init__(
        self,
        *,
        issuer: Issuer,
        signer: ServiceIdentity,
        keystore: KeyStore,
        lookup: Lookup,
        validity: timedelta = timedelta(minutes=15),
        cache_size: int = 10_000,
    ) -> None:
        self._issuer = issuer
        self._signer = signer
        self._keystore = keystore
        self._lookup = lookup
        self._validity = validity
        self._issuer_der = issuer.certificate.dump()
        name_der = issuer.subject.dump()
        key_bits = issuer.certificate.public_key["public_key"].contents[1:]
        self._issuer_hashes = {
            alg: (fn(name_der).digest(), fn(key_bits).digest()) for alg, fn in _HASHES.items()
        }
        signer_bits = signer.certificate.public_key["public_key"].contents[1:]
        key_hash = hashlib.sha1(signer_bits).digest()  # noqa: S324 - RFC 6960 KeyHash
        self._responder_id_der = der.explicit(2, der.octet_string(key_hash))
        self._sig_alg_der = algos.SignedDigestAlgorithm(
            {"algorithm": signature_algorithm(signer.algorithm)[0]}
        ).dump()
        self._certs_der = der.explicit(0, der.sequence(signer.certificate.dump()))
        self._cache: OrderedDict[tuple[bytes, int, str], OcspAnswer] = OrderedDict()
        # Request bytes already parsed and accepted (nonce-free, one certificate of ours).
        self._parsed: OrderedDict[bytes, tuple[ocsp.CertId, str]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def respond(self, request_der: bytes, *, now: datetime, lookup: Lookup | None = None) -> OcspAnswer:
        """Answer one DER OCSPRequest. Never raises for bad input: it is an OCSP error.

        ``lookup`` reads the status instead of the responder's own (a caller that is in a
        database transaction already reads it there, with the same query)."""
        lookup = lookup or self._lookup
        with self._lock:
            parsed = self._parsed.get(request_der)
        if parsed is not None:
            # A nonce-free single request seen before: skip the parse, never the status lookup.
            cert_id, serial = parsed
            return self._single(cert_id, serial, request_der, now, lookup)
        try:
            request = ocsp.OCSPRequest.load(request_der, strict=True)
            tbs = request["tbs_request"]
            cert_ids = [item["req_cert"] for item in tbs["request_list"]]
            for cert_id in cert_ids:
                cert_id.native  # noqa: B018 - force a full parse of every field
            extensions = [ext for ext in tbs["request_extensions"] or [] if ext.native is not None]
        except Exception:  # noqa: BLE001 - asn1crypto raises many types (AttributeError too) on hostile input
            return error_response("malformed_request")
        if not cert_ids or len(cert_ids) > MAX_REQUESTS:
            return error_response("malformed_request")
        nonce = None
        for ext in extensions:
            if ext["extn_id"].native == "nonce":
                value = ext["extn_value"].parsed.native
                if not 1 <= len(value) <= MAX_NONCE_OCTETS:
                    return error_response("malformed_request")
                nonce = ext
        serials = []
        for cert_id in cert_ids:
            alg = cert_id["hash_algorithm"]["algorithm"].native
            expected = self._issuer_hashes.get(alg)
            got = (cert_id["issuer_name_hash"].native, cert_id["issuer_key_hash"].native)
            if expected is None or got != expected:
                return error_response("unauthorized")
            serials.append(format(cert_id["serial_number"].native, "x"))
        if nonce is None and len(cert_ids) == 1:
            return self._single(cert_ids[0], serials[0], request_der, now, lookup)
        rows = [lookup(serial) for serial in serials]
        return self._sign(cert_ids, rows, nonce=nonce, now=now)

    def status(self, issuer: bytes, serial: int) -> str:
        """The certStatus an answer made now would give the certificate ``serial`` of
        ``issuer`` (its DER certificate): ``status_name`` of the row the answers read,
        ``unknown`` for another issuer's. For a caller in this process that needs the
        status and not a signed answer (``signing.InProcessRevocation.signer_status``)."""
        if issuer != self._issuer_der:
            return "unknown"
        return status_name(self._lookup(format(serial, "x")))

    def _single(
        self, cert_id: ocsp.CertId, serial: str, request_der: bytes, now: datetime, lookup: Lookup
    ) -> OcspAnswer:
        """RFC 5019 path: one certificate, no nonce; the signed answer is reused while fresh.

        The status is looked up every time and its revision is part of the cache key, so a
        revocation is answered at once.
        """
        row = lookup(serial)
        key = (cert_id.dump(), row.revision if row else -1, row.state if row else "")
        with self._lock:
            cached = self._cache.get(key)
        fresh_until = cached.this_update + self._validity / 2 if cached and cached.this_update else None
        if cached is not None and fresh_until is not None and now < fresh_until:
            answer = cached
        else:
            answer = self._sign([cert_id], [row], nonce=None, now=now)
        with self._lock:
            self._cache[key] = answer
            self._cache.move_to_end(key)
            self._parsed[request_der] = (cert_id, serial)
            self._parsed.move_to_end(request_der)
            for memo in (self._cache, self._parsed):
                while len(memo) > self._cache_size:
                    memo.popitem(last=False)
        return answer

    def _sign(
        self,
        cert_ids: list[ocsp.CertId],
        rows: list[StatusRow | None],
        *,
        nonce: ocsp.TBSRequestExtension | None,
        now: datetime,
    ) -> OcspAnswer:
        this_update = now.astimezone(UTC).replace(microsecond=0)
        next_update = this_update + self._validity
        this_der = der.generalized_time(this_update)
        next_der = der.explicit(0, der.generalized_time(next_update))
        extended_revoke = False
        singles = []
        for cert_id, row in zip(cert_ids, rows, strict=True):
            if row is None:
                status = _UNKNOWN
            elif status_name(row) == "good":
                status = _GOOD
            elif row.state == CertState.REVOKED.value and row.revoked_at is not None:
                info = der.generalized_time(as_utc(row.revoked_at))
                if row.reason and row.reason != "unspecified":
                    info += der.explicit(0, der.enumerated(_REASON_CODES[row.reason]))
                status = der.tlv(0xA1, info)
            else:
                # Reserved but never stored: maybe signed, never handed out. RFC 6960
                # 2.2 "extended revoked": revoked, certificateHold, at the epoch.
                extended_revoke = True
                status = _EXTENDED_REVOKED
            singles.append(der.sequence(cert_id.dump(), status, this_der, next_der))
        extensions = []
        if nonce is not None:
            extensions.append(nonce.dump())
        if extended_revoke:
            extensions.append(_EXTENDED_REVOKE_EXT)
        data = der.sequence(
            self._responder_id_der,
            der.generalized_time(this_update),
            der.sequence(*singles),
            der.explicit(1, der.sequence(*extensions)) if extensions else b"",
        )
        hash_algorithm = signature_algorithm(self._signer.algorithm)[1]
        signature = self._keystore.sign(self._signer.key_id, data, hash_algorithm=hash_algorithm)
        basic = der.sequence(data, self._sig_alg_der, der.bit_string(signature), self._certs_der)
        response = der.sequence(
            der.enumerated(0),
            der.explicit(0, der.sequence(_BASIC_OID, der.octet_string(basic))),
        )
        return OcspAnswer(
            der=response,
            status="successful",
            this_update=this_update,
            next_update=next_update,
            cacheable=nonce is None,
            http_headers=(
                ("Last-Modified", format_datetime(this_update, usegmt=True)),
                ("Expires", format_datetime(next_update, usegmt=True)),
                ("ETag", '"' + hashlib.sha256(response).hexdigest()[:32] + '"'),
            ),
        )
