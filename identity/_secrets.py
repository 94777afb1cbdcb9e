"""Random secrets handed to people or browsers, and how we store them (hashed)."""

from __future__ import annotations

import hashlib
import secrets

# Crockford's base32 without I, L, O, U: nothing to misread on paper or a phone.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def human_code(groups: int = 3, size: int = 4) -> str:
    """``KQ7M-2R9D-X4TP``: 60 random bits in groups that are easy to type."""
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(size)) for _ in range(groups))


def normalise_human_code(value: str) -> str:
    """Accept lower case, spaces, and the letters people confuse with digits."""
    cleaned = value.upper().replace(" ", "").replace("-", "")
    cleaned = cleaned.replace("O", "0").replace("I", "1").replace("L", "1")
    return "-".join(cleaned[i : i + 4] for i in range(0, len(cleaned), 4))


def token() -> str:
    """A 256-bit URL-safe secret (cookies, session tokens, bindings)."""
    return secrets.token_urlsafe(32)


def public_id(prefix: str) -> str:
    """An opaque identifier safe to show: ``ar-3kq0…``."""
    return f"{prefix}-{secrets.token_hex(12)}"


def digest(value: str | bytes) -> str:
    """SHA-256 hex of a secret; only this is stored."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()
