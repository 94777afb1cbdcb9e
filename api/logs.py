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
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from .settings import LoggingSettings

request_id: ContextVar[str | None] = ContextVar("eid_request_id", default=None)

# An 11-digit code stands alone or after letters (the subject "EE38001085718"), never
# inside a longer run of digits; "PNOEE-..." semantics identifiers of any country too.
_CODE = re.compile(r"(?<![0-9])[1-8][0-9]{10}(?![0-9])")
_SEMANTICS = re.compile(r"PNO[A-Z]{2}-[0-9A-Za-z-]+")
MASK = "***********"

# Attributes every LogRecord has; anything else was passed as ``extra`` and is logged.
# uvicorn's "color_message" repeats the message with terminal escapes: dropped too.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


def mask(text: str) -> str:
    """``text`` with personal codes replaced."""
    return _CODE.sub(MASK, _SEMANTICS.sub("PNO**-" + MASK, text))


class MaskPersonalCodes(logging.Filter):
    """Masks the formatted message, extra string fields and traceback text of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, mask(value))
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
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
        return mask(json.dumps(entry, ensure_ascii=False))


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
