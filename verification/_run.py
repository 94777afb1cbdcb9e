"""The state of one signature's validation: its context, the checks run, the facts found."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from pyhanko.pdf_utils.reader import PdfFileReader

from .report import Check, Indication, SignatureReport
from .trust import TrustConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What every signature of one document is validated with."""

    reader: PdfFileReader
    """pyHanko's reader of the file."""
    stream: BinaryIO
    """The file, for the byte range check."""
    trust: TrustConfig
    """Anchors and helper certificates."""
    revocation: Callable[[tuple[bytes, ...]], Awaitable[Any]] | None
    """Our trust services asked in process (certificates in, ``RevocationData`` out)."""
    now: datetime
    """The validation time of the report."""
    signature_revisions: frozenset[int]
    """Revisions (0-based) that added a signature."""
    timestamp_revisions: frozenset[int]
    """Revisions (0-based) that added a document time stamp."""
    total_revisions: int
    """Revisions in the file."""
    tail_problem: str | None
    """What follows the newest revision, if anything does."""


class Stop(Exception):
    """A check decided the outcome; carries the indication."""

    def __init__(self, indication: Indication, sub_indication: str, error: str) -> None:
        super().__init__(error)
        self.indication, self.sub_indication, self.error = indication, sub_indication, error


@dataclass(slots=True)
class Run:
    name: str
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def passed(self, check: str, detail: str) -> None:
        self.checks.append(Check(name=check, passed=True, detail=detail))

    def failed(self, check: str, detail: str, indication: Indication, sub: str) -> Stop:
        self.checks.append(
            Check(name=check, passed=False if indication is Indication.TOTAL_FAILED else None, detail=detail)
        )
        return Stop(indication, sub, detail)

    def report(
        self, indication: Indication, sub: str | None, errors: tuple[str, ...] = ()
    ) -> SignatureReport:
        facts = {"level": None, **self.facts}
        return SignatureReport(
            field_name=self.name,
            indication=indication,
            sub_indication=sub,
            checks=tuple(self.checks),
            # A passed signature was caught by nothing (an undecided archive time stamp is
            # a warning there); otherwise every check that failed or could not decide.
            caught_by=()
            if indication is Indication.TOTAL_PASSED
            else tuple(check.name for check in self.checks if check.passed is not True),
            warnings=tuple(self.warnings),
            errors=errors,
            **facts,
        )
