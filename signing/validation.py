"""Validation data for signing: trust roots, OCSP responses and CRLs, never fetched from a URL.

``async_finish`` checks the signer's certificate (and the TSA's) against this data before
it embeds anything, and for B-LT/B-LTA puts the same data into the document's DSS. The
data is either given as it is (``ValidationData``) or gathered on demand from the
service's own trust services, asked in process (``InProcessRevocation``).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from asn1crypto import crl, ocsp, x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.authority import AuthorityWithCert
from pyhanko_certvalidator.fetchers.common_utils import format_ocsp_request
from pyhanko_certvalidator.path import ValidationPath

from .errors import InvalidSigningRequest, SignerCertificateRejected, TrustServiceUnavailable

SIGNER_KEY_USAGE = frozenset({"non_repudiation"})
"""Key usage a signing (or e-seal) certificate must have (contentCommitment)."""

_T = TypeVar("_T")
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationData:
    """Everything needed to validate a signature offline. All values are DER."""

    trust_roots: tuple[bytes, ...]
    """Trust anchors (our root CA); nothing else is trusted."""
    certificates: tuple[bytes, ...] = ()
    """Intermediate and service certificates that help build paths (Citizen CA, TSA)."""
    ocsp_responses: tuple[bytes, ...] = ()
    """OCSPResponse structures, e.g. our responder's answer for the signer's certificate."""
    crls: tuple[bytes, ...] = ()
    """CertificateList structures, e.g. the root CRL covering the Citizen CA and TSA."""


class ValidationSource(Protocol):
    """Gathers validation data for the certificates of one signature when it is finished."""

    async def async_validation_data(self, certificates: Sequence[x509.Certificate]) -> ValidationData:
        """Data covering ``certificates`` (signer, chain, TSA) and the CAs above them."""
        ...


OcspCallable = Callable[[bytes], bytes | Awaitable[bytes]]
"""DER OCSPRequest in, DER OCSPResponse out; e.g. ``Services.ask_ocsp`` with ``now`` bound."""
CrlCallable = Callable[[], Sequence[bytes] | Awaitable[Sequence[bytes]]]
"""The current DER CRLs of our CAs, e.g. from ``keys.crl.current`` for each issuer."""
StatusCallable = Callable[[bytes, int], str | Awaitable[str]]
"""(issuing CA's DER certificate, serial) in; ``good``, ``revoked`` or ``unknown`` out, as
our OCSP responder would answer now, e.g. ``OcspResponder.status``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InProcessRevocation:
    """A ``ValidationSource`` over our own OCSP responder and CRLs, called in process.

    Certificates issued by one of ``ocsp_issuers`` get an OCSP response (with a nonce, so
    it is signed after the signature it supports); every other certificate below a root
    is covered by its issuer's CRL. Certificates with id-pkix-ocsp-nocheck need nothing.
    """

    trust_roots: tuple[bytes, ...]
    """Trust anchors (DER)."""
    certificates: tuple[bytes, ...]
    """Intermediate and service certificates (DER): Citizen CA, TSA, OCSP responder."""
    ocsp_issuers: tuple[bytes, ...]
    """CA certificates (DER) whose subjects' status ``ask_ocsp`` answers."""
    ask_ocsp: OcspCallable
    """Asks the OCSP responder."""
    crls: CrlCallable
    """Returns the current CRLs."""
    root_crls: CrlCallable | None = None
    """Returns the current CRLs of the trust roots alone, if that is cheaper than all of
    ``crls`` (the quick check of B-B and B-T needs no other: the signer's status comes
    from OCSP); None: ``crls``."""
    signer_status: StatusCallable | None = None
    """Reads the signer's status where our responder reads it, for the quick check of
    B-B and B-T, which embeds no answer: the same rows without building, signing,
    parsing and verifying an OCSP response for each signature (about a millisecond).
    Only for a responder in this process, whose database is the truth the answer would
    carry. None: ``ask_ocsp``, with a nonce. B-LT and B-LTA always ask ``ask_ocsp``:
    their answer is embedded."""

    async def async_validation_data(self, certificates: Sequence[x509.Certificate]) -> ValidationData:
        known = load_certificates(self.trust_roots + self.certificates, "trust configuration")
        by_subject = {cert.subject.dump(): cert for cert in [*known, *certificates]}
        roots = {cert.dump() for cert in load_certificates(self.trust_roots, "trust root")}
        ocsp_issuers = {cert.subject.dump() for cert in load_certificates(self.ocsp_issuers, "OCSP issuer")}
        responses: list[bytes] = []
        crl_issuers: set[bytes] = set()
        for cert in _chain_members(certificates, by_subject, roots):
            if cert.ocsp_no_check_value is not None:
                continue
            issuer = by_subject[cert.issuer.dump()]
            if cert.issuer.dump() in ocsp_issuers:
                responses.append(await self._ocsp(cert, issuer))
            else:
                crl_issuers.add(cert.issuer.dump())
        crls: list[bytes] = []
        if crl_issuers:
            try:
                current = {
                    bytes(der): crl.CertificateList.load(der).issuer.dump()
                    for der in await maybe_await(self.crls())
                }
            except Exception as exc:  # noqa: BLE001 - a database or key store failure, or bad DER
                raise TrustServiceUnavailable("the current CRLs are not available") from exc
            crls = [der for der, issuer in current.items() if issuer in crl_issuers]
            if {current[der] for der in crls} != crl_issuers:
                raise TrustServiceUnavailable("a CRL needed for the signature's validation data is missing")
        return ValidationData(
            trust_roots=self.trust_roots,
            certificates=self.certificates,
            ocsp_responses=tuple(responses),
            crls=tuple(crls),
        )

    async def _ocsp(self, cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
        request = format_ocsp_request(
            cert, AuthorityWithCert(issuer), certid_hash_algo="sha256", request_nonces=True
        )
        try:
            answer = await maybe_await(self.ask_ocsp(request.dump()))
            status = ocsp.OCSPResponse.load(answer)["response_status"].native
        except Exception as exc:  # noqa: BLE001 - whatever the responder does, there is no status
            raise TrustServiceUnavailable("the OCSP responder did not answer") from exc
        if status != "successful":
            raise TrustServiceUnavailable(f"the OCSP responder answered {status}")
        return answer


def _chain_members(
    certificates: Sequence[x509.Certificate], by_subject: dict[bytes, x509.Certificate], roots: set[bytes]
) -> list[x509.Certificate]:
    """Every certificate on the way from ``certificates`` up to a root, roots excluded."""
    members: dict[bytes, x509.Certificate] = {}
    for start in certificates:
        cert = start
        for _ in range(_MAX_DEPTH):
            if cert.dump() in roots:
                break
            if cert.self_signed != "no":
                raise SignerCertificateRejected(f"{cert.subject.human_friendly} is not a trusted root")
            members[cert.dump()] = cert
            issuer = by_subject.get(cert.issuer.dump())
            if issuer is None:
                raise SignerCertificateRejected(
                    f"no issuer certificate for {cert.subject.human_friendly}: it is not one of ours"
                )
            cert = issuer
        else:
            raise SignerCertificateRejected("the certificate chain is too long")
    return list(members.values())


async def maybe_await(value: _T | Awaitable[_T]) -> _T:
    """``value``, awaited if it is awaitable (callables given to us may be either)."""
    if inspect.isawaitable(value):
        return await value
    return value


def load_certificates(ders: Iterable[bytes], what: str) -> list[x509.Certificate]:
    """Parse DER certificates fully; ``InvalidSigningRequest`` naming ``what`` if one is bad."""
    certs = []
    for der in ders:
        seen = hashlib.sha256(der).digest()
        if seen not in _parsed:
            try:
                # A full parse now rather than in the middle of signing, on a throwaway copy:
                # asn1crypto values that have been through ``.native`` are slow to copy later.
                x509.Certificate.load(der, strict=True).native  # noqa: B018
            except Exception as exc:  # noqa: BLE001 - asn1crypto raises many types on bad input
                raise InvalidSigningRequest(f"the {what} certificate is not a valid DER certificate") from exc
            if len(_parsed) >= _PARSED_LIMIT:
                _parsed.clear()
            _parsed.add(seen)
        certs.append(x509.Certificate.load(der))
    return certs


# SHA-256 of the DER certificates that passed the full parse. The same few certificates
# (roots, CAs, TSA, each signer) are loaded many times per signature, and the full parse
# costs about 1.5 ms each; the result depends only on the bytes.
_parsed: set[bytes] = set()
_PARSED_LIMIT = 4096


def validation_context(data: ValidationData, extra: Iterable[x509.Certificate] = ()) -> ValidationContext:
    """A context that trusts only ``data.trust_roots``, fetches nothing, and fails hard
    when revocation data is missing."""
    return ValidationContext(
        trust_roots=load_certificates(data.trust_roots, "trust root"),
        other_certs=[*load_certificates(data.certificates, "intermediate"), *extra],
        ocsps=list(data.ocsp_responses),
        crls=list(data.crls),
        allow_fetching=False,
        revocation_mode="hard-fail",
    )


async def async_validate_signer(
    context: ValidationContext, cert: x509.Certificate, chain: Sequence[x509.Certificate]
) -> ValidationPath:
    """The signer's validated path; ``SignerCertificateRejected`` saying why not."""
    validator = CertificateValidator(cert, intermediate_certs=chain, validation_context=context)
    job = validator.async_validate_usage(set(SIGNER_KEY_USAGE))  # type: ignore[no-untyped-call]
    return await validate_job(job, "signer's")


async def async_validate_tsa(
    context: ValidationContext, cert: x509.Certificate, others: Sequence[x509.Certificate]
) -> ValidationPath:
    """The TSA certificate's validated path (timeStamping EKU)."""
    validator = CertificateValidator(cert, intermediate_certs=others, validation_context=context)
    try:
        job = validator.async_validate_usage(set(), {"time_stamping"})  # type: ignore[no-untyped-call]
        return await validate_job(job, "TSA's")
    except SignerCertificateRejected as exc:
        raise TrustServiceUnavailable(f"the time stamp cannot be validated: {exc}") from exc


async def validate_job(job: Awaitable[ValidationPath], whose: str) -> ValidationPath:
    """Await a pyhanko-certvalidator job; its errors as ours, naming ``whose`` certificate."""
    try:
        return await job
    except cv_errors.RevokedError as exc:
        raise SignerCertificateRejected(f"the {whose} certificate is revoked") from exc
    except (cv_errors.ExpiredError, cv_errors.NotYetValidError) as exc:
        raise SignerCertificateRejected(f"the {whose} certificate is not valid now") from exc
    except cv_errors.InsufficientRevinfoError as exc:
        raise TrustServiceUnavailable(f"no revocation data for the {whose} certificate chain") from exc
    except cv_errors.InvalidCertificateError as exc:
        raise SignerCertificateRejected(f"the {whose} certificate may not be used for this: {exc}") from exc
    except (cv_errors.PathBuildingError, cv_errors.PathValidationError) as exc:
        raise SignerCertificateRejected(f"the {whose} certificate does not chain to a trusted root") from exc
