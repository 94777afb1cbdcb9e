"""National personal codes: validation, and what they tell (birth date, sex).

Each country's format is one small class registered in ``FORMATS``; only Estonia's is
built in. A code travels as ``PersonalCode`` with its country, so ``PNOEE-38001085718``
(the ETSI EN 319 412-1 semantics identifier) and TARA's ``EE38001085718`` subject are
both derived from it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .errors import InvalidPersonalCode


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonalCode:
    """A validated personal code."""

    country: str
    """ISO 3166-1 alpha-2 country that issued the code."""
    code: str
    """The code itself, digits only."""
    birth_date: dt.date | None
    """Birth date encoded in the code, where the format has one."""
    sex: Sex | None
    """Sex encoded in the code, where the format has one."""

    @property
    def semantics_identifier(self) -> str:
        """``PNOEE-38001085718`` (ETSI EN 319 412-1, natural person)."""
        return f"PNO{self.country}-{self.code}"

    @property
    def subject(self) -> str:
        """The TARA-compatible OpenID Connect subject: ``EE38001085718``."""
        return f"{self.country}{self.code}"


class CodeFormat(Protocol):
    country: str

    def parse(self, code: str) -> PersonalCode: ...


_WEIGHTS_1 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 1)
_WEIGHTS_2 = (3, 4, 5, 6, 7, 8, 9, 1, 2, 3)
_CENTURIES = {1: 1800, 2: 1800, 3: 1900, 4: 1900, 5: 2000, 6: 2000, 7: 2100, 8: 2100}


def estonian_check_digit(first_ten: str) -> int:
    """The 11th digit: weights 1..9,1 mod 11; if 10, weights 3..9,1,2,3; if still 10, 0."""
    digits = [int(c) for c in first_ten]
    for weights in (_WEIGHTS_1, _WEIGHTS_2):
        remainder = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if remainder != 10:
            return remainder
    return 0


class EstonianCode:
    """Isikukood: GYYMMDDSSSC, G = century and sex, SSS = serial, C = check digit."""

    country = "EE"

    def parse(self, code: str) -> PersonalCode:
        code = code.strip()
        if len(code) != 11 or not code.isascii() or not code.isdigit():
            raise InvalidPersonalCode("an Estonian personal code has exactly 11 digits")
        first = int(code[0])
        if first not in _CENTURIES:
            raise InvalidPersonalCode("the first digit of an Estonian personal code must be 1-8")
        if estonian_check_digit(code[:10]) != int(code[10]):
            raise InvalidPersonalCode("the check digit of the personal code is wrong")
        try:
            birth = dt.date(_CENTURIES[first] + int(code[1:3]), int(code[3:5]), int(code[5:7]))
        except ValueError:
            raise InvalidPersonalCode("the personal code does not contain a valid birth date") from None
        return PersonalCode(
            country=self.country,
            code=code,
            birth_date=birth,
            sex=Sex.MALE if first % 2 else Sex.FEMALE,
        )


FORMATS: dict[str, CodeFormat] = {"EE": EstonianCode()}


def parse_personal_code(code: str, country: str = "EE") -> PersonalCode:
    """Validate ``code`` for ``country``; ``InvalidPersonalCode`` with the reason if wrong."""
    code_format = FORMATS.get(country.upper())
    if code_format is None:
        raise InvalidPersonalCode(f"personal codes of country {country!r} are not supported")
    return code_format.parse(code)


def parse_subject(value: str) -> PersonalCode:
    """Accept ``EE38001085718``, ``PNOEE-38001085718`` or a bare Estonian code."""
    value = value.strip()
    if value.startswith("PNO") and value[5:6] == "-":
        return parse_personal_code(value[6:], value[3:5])
    if value[:2].isalpha():
        return parse_personal_code(value[2:], value[:2])
    return parse_personal_code(value)
