"""Logging: one JSON object (or one readable line) per record, personal codes masked.

Every record passes :class:`MaskPersonalCodes` on the handler, so masking covers our own
loggers, uvicorn's and every library's alike: the message with its arguments, the extra
fields of the access log, and the text of a traceback. Records logged while a request is
served carry its request id (a context variable set by the access middleware).
"""

from __future__ import annotations

import json
import logging
import re
import time
from contextvars import ContextVar
from typing import Any

from .settings import LoggingSettings

request_id: ContextVar[str | None] = ContextVar("eid_request_id", default=None)

# An 11-digit code stands alone or after letters (the subject "EE38001085718"), never
# inside a longer run of digits; "PNOEE-..." semantics identifiers of any country too.
# In one pattern: ``(?<![0-9])[1-8][0-9]{10}(?![0-9])``. ``mask`` finds exactly those codes
# (a test compares it with the pattern) but faster, as it runs several times on every log
# record and most text holds none: a text without 11 digits in a row is passed after one
# byte translation (digits to "0", all else to " ") and a substring search; otherwise each
# whole run of 11 or more digits (``_DIGIT_RUN``) is looked at. The pattern itself, with
# its look-behind tried at every position, cost ~7 us on a 280-character log line.
_DIGIT_RUN = re.compile(r"[0-9]{11,}")
_FIRST_DIGITS = frozenset("12345678")
_DIGITS_TO_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_ELEVEN_DIGITS = b"0" * 11
_SEMANTICS = re.compile(r"PNO[A-Z]{2}-[0-9A-Za-z-]+")
MASK = "***********"

# Attributes every LogRecord has; anything else was passed as ``extra`` and is logged.
# uvicorn's "color_message" repeats the message with terminal escapes: dropped too.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


def _mask_run(match: re.Match[str]) -> str:
    run = match.group()
    return MASK if len(run) == 11 and run[0] in _FIRST_DIGITS else run


_FORMATTER = logging.Formatter()
_JSON = json.JSONEncoder(ensure_ascii=False).encode
_SECOND: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _utc_time(record: logging.LogRecord) -> str:
    """``2026-01-02T03:04:05.678+00:00``, as ``datetime.isoformat(timespec="milliseconds")``
    gives it, with the whole seconds formatted once per second rather than per record."""
    global _SECOND
    second = int(record.created)
    cached, text = _SECOND
    if cached != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _SECOND = (second, text)
    return f"{text}.{int(record.msecs):03d}+00:00"


def mask(text: str) -> str:
    """``text`` with personal codes replaced."""
    if "PNO" in text:
        text = _SEMANTICS.sub("PNO**-" + MASK, text)
    if len(text) < 11:
        return text
    # UTF-8 keeps ASCII digits as they are and writes every other character with bytes
    # that are no digits; "surrogatepass" takes the lone surrogates of undecodable input.
    if _ELEVEN_DIGITS not in text.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO):
        return text
    return _DIGIT_RUN.sub(_mask_run, text)


class MaskPersonalCodes(logging.Filter):
    """Masks the formatted message, extra string fields and traceback text of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        fields = record.__dict__
        if "request_id" not in fields:
            fields["request_id"] = request_id.get()
        for key in fields.keys() - _STANDARD:
            if isinstance(value := fields[key], str):
                fields[key] = mask(value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        # The last line of defence: nothing unmasked leaves, whatever a field held.
        return mask(_JSON(entry))


class TextFormatter(logging.Formatter):
    """``time level logger [request id] message key=value ...`` for people."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD and key != "request_id" and value is not None
        )
        rid = getattr(record, "request_id", None)
        line = super().format(record)
        if rid:
            line = line.replace(f" {record.name} ", f" {record.name} [{rid}] ", 1)
        return mask(f"{line} {extras}" if extras else line)


def config(settings: LoggingSettings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the whole process, uvicorn's loggers included.

    uvicorn's own access log is switched off: the access middleware logs each request
    once, with the route template and the request id uvicorn does not know.
    """
    formatter = "json" if settings.format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask": {"()": MaskPersonalCodes}},
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "filters": ["mask"],
                "formatter": formatter,
            }
        },
        "root": {"handlers": ["default"], "level": settings.level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": settings.level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": settings.level},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
        },
    }
