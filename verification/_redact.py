"""Keeping personal codes out of logs and error texts.

Certificate subjects of citizens carry their personal code (``PNOEE-…``); pyHanko puts
subjects into its warnings and exception messages, so both are cleaned before they
reach a log or a report's error text.
"""

from __future__ import annotations

import logging
import re

_PERSONAL = re.compile(r"PNO[A-Z]{2}-[0-9A-Za-z]+|\b\d{11}\b")


def redact(text: str) -> str:
    """Remove personal codes (``PNOEE-…`` and bare 11-digit codes) from a text."""
    return _PERSONAL.sub("[personal code]", text)


class RedactingFilter(logging.Filter):
    """pyHanko logs certificate subjects (with personal codes) in its warnings; this
    rewrites such records and drops their tracebacks, whose text repeats the subject."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        exc_text = "".join(str(part) for part in (record.exc_info or ())[1:2])
        if cleaned != message or (record.exc_info and redact(exc_text) != exc_text):
            record.msg, record.args = cleaned, ()
            record.exc_info, record.exc_text = None, None
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Put the filter on every pyHanko logger: a logger's filters do not apply to its
    children, and pyHanko logs through one logger per module (some created lazily)."""
    names = [name for name in logging.Logger.manager.loggerDict if name.startswith("pyhanko")]
    for name in ["pyhanko", "pyhanko_certvalidator", *names]:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
