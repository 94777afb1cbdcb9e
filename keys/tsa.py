"""The RFC 3161 time-stamping authority.

Serial numbers are 128-bit random integers (127 random bits), unique without a database
round trip; time comes from the system clock, which operators keep on NTP. Every
well-formed request the TSA cannot honour gets a ``rejection`` with the RFC 3161 failure
bit, never an HTTP error without a TimeStampResp.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos, cms, core, tsp, x509

from . import _der as der
from ._x509 import random_serial, signature_algorithm
from .keystore import KeyStore
from .pki import ServiceIdentity

_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
_V1 = der.integer(1)
_V3 = der.integer(3)
_GRANTED = der.sequence(der.integer(0))
_SIGNED_DATA_OID = der.oid("1.2.840.113549.1.7.2")
_TST_INFO_OID = der.oid("1.2.840.113549.1.9.16.1.4")
_MESSAGE_DIGEST_OID = der.oid("1.2.840.113549.1.9.4")
_SIGNING_CERT_V2_OID = der.oid("1.2.840.113549.1.9.16.2.47")
_CONTENT_TYPE_ATTR = der.sequence(der.oid("1.2.840.113549.1.9.3"), der.set_of(_TST_INFO_OID))


@dataclass(frozen=True, slots=True, kw_only=True)
class TsaAnswer:
    """A DER TimeStampResp and what it says."""

    der: bytes
    """The encoded TimeStampResp."""
    granted: bool
    """Whether a token was issued."""
    failure: str | None = None
    """RFC 3161 PKIFailureInfo bit name when rejected."""


class _RejectionResp(core.Sequence):
    """TimeStampResp without a token (asn1crypto's class makes the token mandatory)."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def rejection(failure: str, text: str) -> TsaAnswer:
    status = tsp.PKIStatusInfo(
        {
            "status": "rejection",
            "status_string": [text],
            "fail_info": tsp.PKIFailureInfo({failure}),
        }
    )
    return TsaAnswer(der=_RejectionResp({"status": status}).dump(), granted=False, failure=failure)


class TimeStampAuthority:
    """Issues time-stamp tokens signed with the TSA key."""

    def __init__(
        self,
        *,
        identity: ServiceIdentity,
        keystore: KeyStore,
        policy: str,
        accuracy_ms: int = 1000,
    ) -> None:
        self._identity = identity
        self._keystore = keystore
        self._policy = policy
        cert = identity.certificate
        sig_name, self._hash = signature_algorithm(identity.algorithm)
        self._digest = getattr(hashlib, self._hash.value)
        self._policy_der = der.oid(policy)
        seconds, millis = divmod(accuracy_ms, 1000)
        self._accuracy_der = der.sequence(
            der.integer(seconds) if seconds else b"",
            der.tlv(0x80, der.integer(millis)[2:]) if millis else b"",
        )
        # tsa [0] EXPLICIT GeneralName, directoryName [4] EXPLICIT Name.
        self._tsa_name_der = der.explicit(0, der.explicit(4, cert.subject.dump()))
        self._digest_alg_der = algos.DigestAlgorithm({"algorithm": self._hash.value}).dump()
        self._sig_alg_der = algos.SignedDigestAlgorithm({"algorithm": sig_name}).dump()
        self._sid_der = der.sequence(cert.issuer.dump(), der.integer(cert.serial_number))
        self._certs_der = der.tlv(0xA0, cert.dump())
        ess = tsp.SigningCertificateV2(
            {
                "certs": [
                    {
                        "cert_hash": hashlib.sha256(cert.dump()).digest(),
                        "issuer_serial": {
                            "issuer": [x509.GeneralName(name="directory_name", value=cert.issuer)],
                            "serial_number": cert.serial_number,
                        },
                    }
                ]
            }
        )
        self._ess_attr = der.sequence(_SIGNING_CERT_V2_OID, der.set_of(ess.dump()))

    def respond(self, request_der: bytes, *, now: datetime) -> TsaAnswer:
        """Answer one DER TimeStampReq."""
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            request.native  # noqa: B018 - force a full parse
            version = request["version"].native
            imprint = request["message_imprint"]
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            hashed = imprint["hashed_message"].native
            policy = request["req_policy"].native
            nonce = request["nonce"] if request["nonce"].native is not None else None
            cert_req = bool(request["cert_req"].native)
            extensions = request["extensions"].native
        except Exception:  # noqa: BLE001 - asn1crypto raises many types (AttributeError too) on hostile input
            return rejection("bad_data_format", "the request is not a DER TimeStampReq")
        if version != "v1":
            return rejection("bad_request", "only version 1 requests are supported")
        if algorithm not in _DIGEST_SIZES:
            return rejection(
                "bad_alg",
                f"unsupported hash algorithm {algorithm}: use SHA-256, SHA-384 or SHA-512",
            )
        if len(hashed) != _DIGEST_SIZES[algorithm]:
            return rejection("bad_data_format", "the message imprint length does not match its algorithm")
        if policy is not None and policy != self._policy:
            return rejection("unaccepted_policy", f"only policy {self._policy} is offered")
        if extensions:
            return rejection("unaccepted_extension", "request extensions are not supported")
        return self._grant(imprint, nonce, cert_req, now)

    def _grant(
        self, imprint: tsp.MessageImprint, nonce: core.Integer | None, cert_req: bool, now: datetime
    ) -> TsaAnswer:
        tst_info = der.sequence(
            _V1,
            self._policy_der,
            imprint.dump(),
            der.integer(random_serial()),
            der.generalized_time(now, millis=True),
            self._accuracy_der,
            nonce.dump() if nonce is not None else b"",
            self._tsa_name_der,
        )
        digest = self._digest(tst_info).digest()
        # DER SET OF: attributes sorted by encoding. Signed as a SET, sent as [0].
        attributes = b"".join(
            sorted(
                (
                    _CONTENT_TYPE_ATTR,
                    der.sequence(_MESSAGE_DIGEST_OID, der.set_of(der.octet_string(digest))),
                    self._ess_attr,
                )
            )
        )
        signature = self._keystore.sign(
            self._identity.key_id, der.tlv(0x31, attributes), hash_algorithm=self._hash
        )
        signer_info = der.sequence(
            _V1,
            self._sid_der,
            self._digest_alg_der,
            der.tlv(0xA0, attributes),
            self._sig_alg_der,
            der.octet_string(signature),
        )
        signed_data = der.sequence(
            _V3,
            der.set_of(self._digest_alg_der),
            der.sequence(_TST_INFO_OID, der.explicit(0, der.octet_string(tst_info))),
            self._certs_der if cert_req else b"",
            der.set_of(signer_info),
        )
        token = der.sequence(_SIGNED_DATA_OID, der.explicit(0, signed_data))
        return TsaAnswer(der=der.sequence(_GRANTED, token), granted=True)
