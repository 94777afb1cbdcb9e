"""Base64 fields in JSON bodies, decoded with a clear 422 when malformed."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer


def _decode(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    if len(value) > 64 * 1024:
        raise ValueError("value too long")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64 (RFC 4648, standard alphabet, with padding)") from None


def encode(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_decode),
    PlainSerializer(encode, return_type=str),
]
"""Bytes carried as standard base64 in JSON."""
