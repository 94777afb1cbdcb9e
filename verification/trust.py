"""What the validator trusts: our own root, plus anchors the operator adds.

Our own PKI is special: the service can always say whether one of its certificates is
revoked, so revocation information is required for every certificate below our roots
(hard fail). Extra anchors come from a folder of certificates (PEM or DER) and, if
configured, from an EU-style trusted list (ETSI TS 119 612 XML, read from a local file:
the validator never downloads a list). Everything is DER bytes, so a ``TrustConfig`` can
be handed to a worker process as it is.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem, x509

from .errors import VerificationError

CERTIFICATE_SUFFIXES = (".pem", ".crt", ".cer", ".der")
_TSL = "{http://uri.etsi.org/02231/v2#}"
_GRANTED = (
    "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted",
    "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/recognisedatnationallevel",
)
_MAX_TRUSTED_LIST_BYTES = 32 * 1024 * 1024


class TrustConfigurationError(VerificationError):
    """An anchor folder or trusted list that cannot be read. Raised at start-up, by the
    operator's configuration, never by an upload."""

    status = 500
    public = False
    slug = "trust-configuration-error"
    title = "Trust configuration error"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustConfig:
    """Trust anchors and helper certificates, all DER."""

    own_roots: tuple[bytes, ...]
    """Roots of our own PKI: trusted, and revocation data is required below them."""
    own_certificates: tuple[bytes, ...] = ()
    """Our intermediates and service certificates (Citizen CA, TSA, OCSP responder, seals)."""
    extra_anchors: tuple[bytes, ...] = ()
    """Other trusted roots (and trusted-list service certificates) the operator added."""
    extra_certificates: tuple[bytes, ...] = ()
    """Intermediates from the anchor folder that help build paths to the extra anchors."""

    @property
    def anchors(self) -> tuple[bytes, ...]:
        return self.own_roots + self.extra_anchors

    @property
    def helpers(self) -> tuple[bytes, ...]:
        return self.own_certificates + self.extra_certificates


def build_trust(
    own_roots: tuple[bytes, ...],
    own_certificates: tuple[bytes, ...] = (),
    *,
    anchor_folder: Path | None = None,
    trusted_list: Path | None = None,
) -> TrustConfig:
    """Our roots plus whatever the folder and the trusted list add."""
    anchors: list[bytes] = []
    helpers: list[bytes] = []
    if anchor_folder is not None:
        folder_anchors, folder_helpers = load_anchor_folder(anchor_folder)
        anchors += folder_anchors
        helpers += folder_helpers
    if trusted_list is not None:
        anchors += load_trusted_list(trusted_list)
    own = set(own_roots)
    return TrustConfig(
        own_roots=own_roots,
        own_certificates=own_certificates,
        extra_anchors=tuple(dict.fromkeys(der for der in anchors if der not in own)),
        extra_certificates=tuple(dict.fromkeys(helpers)),
    )


def load_anchor_folder(folder: Path) -> tuple[list[bytes], list[bytes]]:
    """Self-signed certificates in ``folder`` become anchors, the others path helpers."""
    if not folder.is_dir():
        raise TrustConfigurationError(f"the trust anchor folder {folder} does not exist")
    anchors: list[bytes] = []
    helpers: list[bytes] = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in CERTIFICATE_SUFFIXES:
            continue
        for der in _certificates_in(path.read_bytes(), path.name):
            cert = x509.Certificate.load(der)
            (anchors if cert.self_signed != "no" else helpers).append(der)
    return anchors, helpers


def _certificates_in(data: bytes, name: str) -> list[bytes]:
    try:
        ders = [der for _, _, der in pem.unarmor(data, multiple=True)] if pem.detect(data) else [data]
        for der in ders:
            x509.Certificate.load(der, strict=True).native  # noqa: B018 - full parse now, not mid-validation
    except Exception as exc:  # noqa: BLE001 - asn1crypto raises many types on bad input
        raise TrustConfigurationError(f"{name} is not a certificate (PEM or DER)") from exc
    return [bytes(der) for der in ders]


def load_trusted_list(path: Path) -> list[bytes]:
    """Service certificates of the granted services of an ETSI TS 119 612 trusted list.

    The signature over the list is not checked here: the operator vouches for the local
    file (fetch and verify it with the tools of the list's operator). The file is local
    configuration, not an upload, so the standard library's XML parser is acceptable.
    """
    try:
        if path.stat().st_size > _MAX_TRUSTED_LIST_BYTES:
            raise TrustConfigurationError(f"the trusted list {path} is larger than 32 MB")
        root = ET.parse(path).getroot()  # noqa: S314 - operator's own file, see above
    except (OSError, ET.ParseError) as exc:
        raise TrustConfigurationError(f"the trusted list {path} cannot be read: {exc}") from exc
    found: list[bytes] = []
    for service in root.iter(f"{_TSL}TSPService"):
        status = service.findtext(f"{_TSL}ServiceInformation/{_TSL}ServiceStatus", "").strip()
        if status not in _GRANTED:
            continue
        for element in service.iter(f"{_TSL}X509Certificate"):
            text = "".join((element.text or "").split())
            try:
                der = base64.b64decode(text, validate=True)
            except ValueError as exc:
                raise TrustConfigurationError(f"a certificate in {path} is not base64") from exc
            found += _certificates_in(der, f"a certificate in {path.name}")
    return found
