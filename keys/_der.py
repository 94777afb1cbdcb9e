"""A minimal DER writer for the hot paths (OCSP and TSA responses).

asn1crypto builds these structures correctly but spends milliseconds on each; the
responders instead join pre-encoded constant parts (certificates, algorithm
identifiers) with the few fields that change per answer. Tests check the output with
OpenSSL and asn1crypto.
"""

from __future__ import annotations

from datetime import UTC, datetime

from asn1crypto import core


def tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def set_of(*parts: bytes) -> bytes:
    """DER SET OF: elements sorted by their encodings."""
    return tlv(0x31, b"".join(sorted(parts)))


def integer(value: int) -> bytes:
    size = value.bit_length() // 8 + 1  # room for the sign bit
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


def enumerated(value: int) -> bytes:
    return tlv(0x0A, value.to_bytes(1, "big"))


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def bit_string(value: bytes) -> bytes:
    return tlv(0x03, b"\x00" + value)


def oid(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


def explicit(number: int, content: bytes) -> bytes:
    """A context-specific constructed tag ``[number]`` around ``content``."""
    return tlv(0xA0 | number, content)


def generalized_time(value: datetime, *, millis: bool = False) -> bytes:
    """GeneralizedTime in UTC; with ``millis``, a fraction without trailing zeros."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y%m%d%H%M%S")
    if millis and value.microsecond // 1000:
        text += ("." + f"{value.microsecond // 1000:03d}").rstrip("0")
    return tlv(0x18, (text + "Z").encode("ascii"))
