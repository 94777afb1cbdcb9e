"""The quick certificate check for B-B and B-T: the CA chain once, the signer every time.

A B-B or B-T signature embeds no validation data, so pyhanko-certvalidator's full path
building (about 30 ms of asn1crypto name handling per signature) buys nothing that the
checks below do not. What is above the signer changes rarely and is published in the
root's CRL: the Citizen CA (and the TSA) are validated with pyhanko-certvalidator
against that CRL, and the result is remembered until the CRL's nextUpdate or
``CHAIN_MEMO_LIFETIME``, whichever is sooner, keyed on the exact DER of the
certificates and of the CRL, so a new CRL (say, the CA revoked) is checked at once.

The signer's own certificate is checked on every signature: issued by that CA (the
signature check is remembered per DER), valid now, fit for signing (nonRepudiation, no
critical extension pyhanko-certvalidator does not know), and good in a fresh OCSP
response (with our nonce) from our responder, signed by the CA or by its delegated
responder; or, when the source offers ``signer_status`` (our responder in this
process), good in the rows that response would be made from. A revoked signer is
refused on the very next signature.

Anything outside the usual shape (a CA not directly below a trust root, a CA with name
or policy constraints, unusual algorithms, a responder without ocsp-nocheck) raises
``OutOfScope``, and the caller takes the full path instead: never weaker, only slower.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from asn1crypto import crl, x509
from cryptography import x509 as crypto_x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp as crypto_ocsp
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.validate import SUPPORTED_EXTENSIONS

from .errors import SignerCertificateRejected, TrustServiceUnavailable
from .validation import (
    SIGNER_KEY_USAGE,
    InProcessRevocation,
    StatusCallable,
    async_validate_tsa,
    load_certificates,
    maybe_await,
    validate_job,
)

CHAIN_MEMO_LIFETIME = timedelta(minutes=5)
"""Longest time a validated CA or TSA certificate is trusted without a new check."""
OCSP_CLOCK_SKEW = timedelta(minutes=2)
"""How far in the future an OCSP response's thisUpdate may be (clocks of two instances)."""

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_CONSTRAINTS = frozenset({"name_constraints", "policy_constraints", "policy_mappings", "inhibit_any_policy"})
"""CA extensions that make path validation more than a signature and a date: full path."""
_NOT_CHAINED = "the signer's certificate does not chain to a trusted root"
_MEMO_SIZE = 1024
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)
_T = TypeVar("_T")


class OutOfScope(Exception):  # noqa: N818 - not an error: "take the full path"
    """The quick check does not cover this certificate; validate it the full way."""


class _Memo:
    """A bounded, thread-safe map from a key to a value and the moment it expires."""

    def __init__(self) -> None:
        self._items: OrderedDict[bytes, tuple[datetime, object]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes, kind: type[_T], now: datetime | None = None) -> _T | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            if now is not None and now >= found[0]:
                del self._items[key]
                return None
            self._items.move_to_end(key)
        value = found[1]
        return value if isinstance(value, kind) else None

    def put(self, key: bytes, value: object, until: datetime = _END_OF_TIME) -> None:
        with self._lock:
            self._items[key] = (until, value)
            self._items.move_to_end(key)
            while len(self._items) > _MEMO_SIZE:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_validated = _Memo()
"""CA and TSA certificates validated against a CRL, until the CRL or the bound expires."""
_parsed = _Memo()
"""Facts that depend only on DER bytes: signature checks, parsed certificates and CRLs."""


def forget() -> None:
    """Drop every remembered result (tests; a change of the trust configuration)."""
    _validated.clear()
    _parsed.clear()


def _key(kind: bytes, *ders: bytes) -> bytes:
    digest = hashlib.sha256(kind)
    for der in ders:
        digest.update(len(der).to_bytes(4, "big"))
        digest.update(der)
    return digest.digest()


async def async_check_signer(
    source: InProcessRevocation,
    cert: x509.Certificate,
    *,
    tsa_signers: Sequence[x509.Certificate] = (),
    now: datetime | None = None,
) -> None:
    """Check ``cert`` (and the TSA certificates of its time stamp) for a B-B or B-T
    signature: ``SignerCertificateRejected`` or ``TrustServiceUnavailable`` where the
    full path would say so, ``OutOfScope`` where this check cannot decide."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    ca = _issuing_ca(source, cert)
    signer = _check_signer_certificate(cert, ca, when)
    # The signer's status is the part that is new for every signature.
    if source.signer_status is not None:
        status = await _read_status(source.signer_status, ca, cert)
    else:
        request, nonce = _ocsp_request(signer, ca)
        answer = await _ask_ocsp(source, request)
    root_crls = await _root_crls(source, ca.root)
    await _check_ca(ca, root_crls, when)
    for tsa in tsa_signers:
        await _check_tsa(tsa, ca, root_crls, when)
    if source.signer_status is not None:
        _check_status(status)
    else:
        _check_ocsp_answer(answer, signer, nonce, ca, when)


# --------------------------------------------------------------------------- the CA


@dataclass(frozen=True, slots=True)
class _Ca:
    """A configured OCSP issuer directly below a trust root, with what is asked of it."""

    cert: x509.Certificate
    crypto: crypto_x509.Certificate
    root: x509.Certificate
    name_hash: bytes
    """SHA-256 of its subject (OCSP CertID)."""
    key_hash: bytes
    """SHA-256 of its public key bits (OCSP CertID)."""
    key_sha1: bytes
    """SHA-1 of its public key bits (OCSP ResponderID byKey)."""
    out_of_scope: str | None


def _issuing_ca(source: InProcessRevocation, cert: x509.Certificate) -> _Ca:
    """The configured CA whose OCSP responder answers for ``cert``, or ``OutOfScope``."""
    config = _key(b"config", *source.trust_roots, b"", *source.ocsp_issuers)
    cas = _parsed.get(config, dict)
    if cas is None:
        cas = _configured_cas(source)
        _parsed.put(config, cas)
    ca = cas.get(cert.issuer.dump())
    if not isinstance(ca, _Ca):
        raise OutOfScope("not issued by a CA whose OCSP responder we ask")
    if ca.out_of_scope is not None:
        raise OutOfScope(ca.out_of_scope)
    return ca


def _configured_cas(source: InProcessRevocation) -> dict[bytes, _Ca]:
    roots = {root.subject.dump(): root for root in load_certificates(source.trust_roots, "trust root")}
    cas = {}
    for issuer in load_certificates(source.ocsp_issuers, "OCSP issuer"):
        root = roots.get(issuer.issuer.dump())
        extensions = {ext["extn_id"].native for ext in issuer["tbs_certificate"]["extensions"] or []}
        if issuer.dump() in source.trust_roots:
            reason: str | None = "the OCSP issuer is a trust root"
        elif root is None:
            reason = "the CA is not directly below a trust root"
        elif extensions & _CONSTRAINTS:
            reason = "the CA has name or policy constraints"
        else:
            reason = None
        key_bits = issuer.public_key["public_key"].contents[1:]
        cas[issuer.subject.dump()] = _Ca(
            cert=issuer,
            crypto=crypto_x509.load_der_x509_certificate(issuer.dump()),
            root=root or issuer,
            name_hash=hashlib.sha256(issuer.subject.dump()).digest(),
            key_hash=hashlib.sha256(key_bits).digest(),
            key_sha1=hashlib.sha1(key_bits).digest(),  # noqa: S324 - RFC 6960 KeyHash
            out_of_scope=reason,
        )
    return cas


async def _root_crls(source: InProcessRevocation, root: x509.Certificate) -> list[bytes]:
    """The current CRLs issued by ``root`` (DER), as the full path would gather them."""
    try:
        crls = source.root_crls or source.crls
        current = [bytes(der) for der in await maybe_await(crls())]
        found = [der for der in current if _crl_facts(der)[0] == root.subject.dump()]
    except Exception as exc:  # noqa: BLE001 - a database or key store failure, or bad DER
        raise TrustServiceUnavailable("the current CRLs are not available") from exc
    if not found:
        raise TrustServiceUnavailable("a CRL needed for the signature's validation data is missing")
    return found


def _crl_facts(der: bytes) -> tuple[bytes, datetime | None]:
    """A CRL's issuer (DER) and nextUpdate."""
    key = _key(b"crl", der)
    found = _parsed.get(key, tuple)
    if found is None:
        tbs = crl.CertificateList.load(der)["tbs_cert_list"]
        found = (tbs["issuer"].dump(), tbs["next_update"].native)
        _parsed.put(key, found)
    return found


def _memo_until(now: datetime, crls: Sequence[bytes], *certs: x509.Certificate) -> datetime:
    until = now + CHAIN_MEMO_LIFETIME
    for der in crls:
        next_update = _crl_facts(der)[1]
        if next_update is None:
            return now  # a CRL without nextUpdate: not remembered at all
        until = min(until, next_update)
    for cert in certs:
        until = min(until, cert.not_valid_after)
    return until


def _context(root: x509.Certificate, crls: Sequence[bytes], now: datetime) -> ValidationContext:
    return ValidationContext(
        trust_roots=[root], crls=list(crls), allow_fetching=False, revocation_mode="hard-fail", moment=now
    )


async def _check_ca(ca: _Ca, crls: Sequence[bytes], now: datetime) -> None:
    """The CA is a CA, chains to its root and is not revoked in ``crls``; remembered."""
    key = _key(b"ca", ca.cert.dump(), ca.root.dump(), *sorted(crls))
    if _validated.get(key, bool, now):
        return
    if not ca.cert.ca:
        raise SignerCertificateRejected(_NOT_CHAINED)
    context = _context(ca.root, crls, now)
    try:
        validator = CertificateValidator(ca.cert, validation_context=context)
        job = validator.async_validate_usage({"key_cert_sign"})  # type: ignore[no-untyped-call]
        await validate_job(job, "issuing CA's")
    finally:
        await context.aclose()  # type: ignore[no-untyped-call]
    _validated.put(key, True, _memo_until(now, crls, ca.cert, ca.root))


async def _check_tsa(tsa: x509.Certificate, ca: _Ca, crls: Sequence[bytes], now: datetime) -> None:
    """The TSA's certificate validates (timeStamping) below the same root and CRL; remembered."""
    if tsa.issuer.dump() != ca.root.subject.dump():
        raise OutOfScope("the TSA is not directly below the signer's root")
    key = _key(b"tsa", tsa.dump(), ca.root.dump(), *sorted(crls))
    if _validated.get(key, bool, now):
        return
    context = _context(ca.root, crls, now)
    try:
        await async_validate_tsa(context, tsa, [])
    finally:
        await context.aclose()  # type: ignore[no-untyped-call]
    _validated.put(key, True, _memo_until(now, crls, tsa, ca.root))


# --------------------------------------------------------------------------- the signer


@dataclass(frozen=True, slots=True)
class _Issued:
    """A certificate whose signature by its CA checked out, and what is asked of it often."""

    crypto: crypto_x509.Certificate
    not_before: datetime
    not_after: datetime
    key_sha1: bytes
    """SHA-1 of its public key bits (OCSP ResponderID byKey)."""
    problem: str | None
    """Why it may not be used for the purpose asked, if it may not (independent of time)."""


def _check_signer_certificate(cert: x509.Certificate, ca: _Ca, now: datetime) -> _Issued:
    """What pyhanko-certvalidator checks of the end of the path, for a signer."""
    issued = _issued_by(cert.dump(), ca, _signer_problem)
    if not issued.not_before <= now <= issued.not_after:
        raise SignerCertificateRejected("the signer's certificate is not valid now")
    if issued.problem is not None:
        raise SignerCertificateRejected(issued.problem)
    return issued


def _signer_problem(cert: x509.Certificate) -> str | None:
    if cert.critical_extensions - SUPPORTED_EXTENSIONS:
        return _NOT_CHAINED
    usage = cert.key_usage_value
    missing = set(SIGNER_KEY_USAGE) - (set(usage.native) if usage is not None else set())
    if missing:
        purposes = ", ".join(sorted(purpose.replace("_", " ") for purpose in missing))
        return (
            "the signer's certificate may not be used for this: "
            f"The X.509 certificate provided is not valid for the purpose of {purposes}"
        )
    return None


def _responder_problem(cert: x509.Certificate) -> str | None:
    if cert.critical_extensions - SUPPORTED_EXTENSIONS:
        return "unknown critical extension"
    usage = cert.extended_key_usage_value
    if usage is None or "ocsp_signing" not in usage.native:
        return "not an OCSP responder"
    if cert.ocsp_no_check_value is None:
        return "no ocsp-nocheck"
    return None


def _issued_by(der: bytes, ca: _Ca, problem: Callable[[x509.Certificate], str | None]) -> _Issued:
    """The certificate ``der`` carries a valid signature of ``ca`` (remembered per DER),
    or ``SignerCertificateRejected``; ``problem`` says what else is wrong with it."""
    key = _key(problem.__name__.encode(), der, ca.cert.dump())
    found = _parsed.get(key, _Issued)
    if found is not None:
        return found
    cert = x509.Certificate.load(der)
    if cert.signature_algo not in ("ecdsa", "rsassa_pkcs1v15") or cert.hash_algo not in _HASHES:
        raise OutOfScope("an unusual signature algorithm on the certificate")
    try:
        loaded = crypto_x509.load_der_x509_certificate(der)
        loaded.verify_directly_issued_by(ca.crypto)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        raise SignerCertificateRejected(_NOT_CHAINED) from exc
    issued = _Issued(
        crypto=loaded,
        not_before=loaded.not_valid_before_utc,
        not_after=loaded.not_valid_after_utc,
        key_sha1=hashlib.sha1(cert.public_key["public_key"].contents[1:]).digest(),  # noqa: S324 - KeyHash
        problem=problem(cert),
    )
    _parsed.put(key, issued)
    return issued


# --------------------------------------------------------------------------- OCSP


def _ocsp_request(signer: _Issued, ca: _Ca) -> tuple[bytes, bytes]:
    """A DER OCSPRequest for the signer (a SHA-256 CertID, as pyHanko asks) with a fresh
    32-byte nonce; (request, nonce)."""
    nonce = secrets.token_bytes(32)
    request = (
        crypto_ocsp.OCSPRequestBuilder()
        .add_certificate(signer.crypto, ca.crypto, hashes.SHA256())
        .add_extension(crypto_x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    return request.public_bytes(serialization.Encoding.DER), nonce


async def _ask_ocsp(source: InProcessRevocation, request: bytes) -> crypto_ocsp.OCSPResponse:
    try:
        answer = crypto_ocsp.load_der_ocsp_response(await maybe_await(source.ask_ocsp(request)))
        status = answer.response_status
    except Exception as exc:  # noqa: BLE001 - whatever the responder does, there is no status
        raise TrustServiceUnavailable("the OCSP responder did not answer") from exc
    if status is not crypto_ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise TrustServiceUnavailable(f"the OCSP responder answered {status.name.lower()}")
    return answer


async def _read_status(read: StatusCallable, ca: _Ca, cert: x509.Certificate) -> str:
    try:
        return str(await maybe_await(read(ca.cert.dump(), cert.serial_number)))
    except Exception as exc:  # noqa: BLE001 - a database failure: no status
        raise TrustServiceUnavailable("the signer's certificate status is not available") from exc


def _check_status(status: str) -> None:
    """What ``_check_ocsp_answer`` concludes from an answer carrying ``status``."""
    if status == "revoked":
        raise SignerCertificateRejected("the signer's certificate is revoked")
    if status != "good":
        raise _no_data()


def _check_ocsp_answer(
    answer: crypto_ocsp.OCSPResponse, signer: _Issued, nonce: bytes, ca: _Ca, now: datetime
) -> None:
    """The answer is signed by the CA or its delegated responder, carries our nonce, is
    current, is about the signer's certificate, and says good."""
    try:
        _verify(_responder_key(answer, ca, now), answer)
        echoed = answer.extensions.get_extension_for_class(crypto_x509.OCSPNonce).value.nonce
        mine = [
            single
            for single in answer.responses
            if isinstance(single.hash_algorithm, hashes.SHA256)
            and single.issuer_name_hash == ca.name_hash
            and single.issuer_key_hash == ca.key_hash
            and single.serial_number == signer.crypto.serial_number
        ]
    except (SignerCertificateRejected, TrustServiceUnavailable, OutOfScope):
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed answer is no answer
        raise _no_data() from exc
    if echoed != nonce or len(mine) != 1:
        raise _no_data()
    single = mine[0]
    next_update = single.next_update_utc
    if single.this_update_utc > now + OCSP_CLOCK_SKEW or (next_update is not None and next_update < now):
        raise _no_data()
    if single.certificate_status is crypto_ocsp.OCSPCertStatus.REVOKED:
        raise SignerCertificateRejected("the signer's certificate is revoked")
    if single.certificate_status is not crypto_ocsp.OCSPCertStatus.GOOD:
        raise _no_data()


def _no_data() -> TrustServiceUnavailable:
    """What the full path says when no usable OCSP answer covers the signer (also for
    "unknown": our responder does not know the certificate)."""
    return TrustServiceUnavailable("no revocation data for the signer's certificate chain")


def _responder_key(answer: crypto_ocsp.OCSPResponse, ca: _Ca, now: datetime) -> object:
    """The public key the answer must be signed with: the CA's own, or that of a
    delegated responder certificate in the answer (issued by the CA, id-kp-OCSPSigning,
    ocsp-nocheck, valid now)."""
    if _names_responder(answer, ca.key_sha1, ca.crypto):
        return ca.crypto.public_key()
    for included in answer.certificates:
        if included.issuer != ca.crypto.subject:
            continue
        try:
            issued = _issued_by(included.public_bytes(serialization.Encoding.DER), ca, _responder_problem)
        except SignerCertificateRejected:
            continue
        if not _names_responder(answer, issued.key_sha1, issued.crypto):
            continue
        if issued.problem == "no ocsp-nocheck":
            raise OutOfScope("the delegated OCSP responder's certificate has no ocsp-nocheck")
        if issued.problem is None and issued.not_before <= now <= issued.not_after:
            return issued.crypto.public_key()
    raise _no_data()


def _names_responder(
    answer: crypto_ocsp.OCSPResponse, key_sha1: bytes, cert: crypto_x509.Certificate
) -> bool:
    if answer.responder_key_hash is not None:
        return answer.responder_key_hash == key_sha1
    return answer.responder_name == cert.subject


def _verify(key: object, answer: crypto_ocsp.OCSPResponse) -> None:
    algorithm = answer.signature_hash_algorithm
    if algorithm is None or algorithm.name not in _HASHES:
        raise OutOfScope("an unusual OCSP signature algorithm")
    chosen = _HASHES[algorithm.name]()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(chosen))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(answer.signature, answer.tbs_response_bytes, padding.PKCS1v15(), chosen)
        else:
            raise OutOfScope("an unusual OCSP signature algorithm")
    except InvalidSignature as exc:
        raise _no_data() from exc
