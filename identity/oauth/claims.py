"""Claims about a citizen, by scope: what relying parties receive.

``sub`` is ``EE`` + personal code, as Estonia's TARA gives it; with ``profile``, the
names and birth date, also inside ``profile_attributes`` in TARA's shape.
"""

from __future__ import annotations

from typing import Any

from ..citizens import code_of
from ..models import Citizen

PROFILE_CLAIMS = ("given_name", "family_name", "birthdate", "profile_attributes")
ACR_ORDER = ("low", "substantial", "high")


def subject(citizen: Citizen) -> str:
    return code_of(citizen).subject


def user_claims(citizen: Citizen, scope: str, requested: dict[str, Any] | None = None) -> dict[str, Any]:
    """Claims for ``scope``, plus any named in the ``claims`` request parameter we can give."""
    code = code_of(citizen)
    claims: dict[str, Any] = {"sub": code.subject}
    everything = {
        "given_name": citizen.given_name,
        "family_name": citizen.family_name,
        "birthdate": code.birth_date.isoformat() if code.birth_date else None,
        "profile_attributes": {
            "date_of_birth": code.birth_date.isoformat() if code.birth_date else None,
            "given_name": citizen.given_name,
            "family_name": citizen.family_name,
        },
    }
    wanted = set(PROFILE_CLAIMS) if "profile" in scope.split() else set()
    wanted |= set((requested or {}).keys()) & set(PROFILE_CLAIMS)
    for name in sorted(wanted):
        if everything.get(name) is not None:
            claims[name] = everything[name]
    return claims


def satisfies(acr: str, wanted: list[str]) -> bool:
    """Does an authentication at ``acr`` satisfy ``acr_values`` (any of them, or higher)?"""
    if not wanted:
        return True
    known = [ACR_ORDER.index(w) for w in wanted if w in ACR_ORDER]
    return bool(known) and ACR_ORDER.index(acr) >= min(known)
