"""Estonian personal codes, against the published test vectors."""

from __future__ import annotations

import datetime as dt

import pytest

from identity.errors import InvalidPersonalCode
from identity.personal_codes import Sex, estonian_check_digit, parse_personal_code, parse_subject


@pytest.mark.parametrize(
    ("code", "born", "sex"),
    [
        ("38001085718", dt.date(1980, 1, 8), Sex.MALE),
        ("49403136526", dt.date(1994, 3, 13), Sex.FEMALE),
        ("60001019906", dt.date(2000, 1, 1), Sex.FEMALE),
        ("47101010033", dt.date(1971, 1, 1), Sex.FEMALE),
    ],
)
def test_valid_codes(code: str, born: dt.date, sex: Sex) -> None:
    parsed = parse_personal_code(code)
    assert (parsed.birth_date, parsed.sex) == (born, sex)
    assert parsed.semantics_identifier == f"PNOEE-{code}"
    assert parsed.subject == f"EE{code}"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("38001085719", "check digit"),
        ("38013015716", "birth date"),
        ("3800108571", "11 digits"),
        ("380010857180", "11 digits"),
        ("3800108571a", "11 digits"),
        ("٣٨٠٠١٠٨٥٧١٨", "11 digits"),  # Arabic-Indic digits are digits to str.isdigit
        ("98001085718", "first digit"),
        ("", "11 digits"),
    ],
)
def test_invalid_codes(code: str, reason: str) -> None:
    with pytest.raises(InvalidPersonalCode, match=reason):
        parse_personal_code(code)


def test_second_weight_set_and_the_zero_rule() -> None:
    # First weights leave remainder 10 for both prefixes; the second set gives 9 for the
    # first and 10 again for the other, where the check digit becomes 0.
    assert estonian_check_digit("3800108007") == 9
    assert estonian_check_digit("3800108135") == 0
    assert parse_personal_code("38001081350").birth_date == dt.date(1980, 1, 8)


def test_subject_forms() -> None:
    for value in ("EE38001085718", "PNOEE-38001085718", "38001085718"):
        assert parse_subject(value).code == "38001085718"
    with pytest.raises(InvalidPersonalCode, match="not supported"):
        parse_subject("LV38001085718")
