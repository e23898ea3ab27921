"""Log lines that network input cannot forge, and caller content that never reaches them.

Every value a peer sends (a CallSid, a header, a transcript) may hold newlines or
terminal escapes: :class:`SafeLogFilter`, installed on voxline's handlers, escapes
control characters in every formatted message, so one log record is always one line.
Numbers and caller words are redacted where they are logged (:func:`redact_number`,
:func:`redact_text`); ``VOXLINE_LOG_CONTENT=1`` shows caller words for debugging.
"""

from __future__ import annotations

import logging
import os
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_VALUE_LEN = 200
CONTENT_ENV = "VOXLINE_LOG_CONTENT"


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}" if ord(match.group()) < 0x100 else f"\\u{ord(match.group()):04x}"


def clean(value: object, limit: int = MAX_VALUE_LEN) -> str:
    """A peer's value fit for one log line: control characters escaped, length capped."""
    text = _CONTROL.sub(_escape, str(value))
    return text if len(text) <= limit else text[:limit] + f"…(+{len(text) - limit})"


def redact_number(number: str | None) -> str:
    """Phone numbers never reach logs whole: keep the last two digits only."""
    if not number:
        return "-"
    if number.lower().startswith("sip:"):
        return "sip:***"
    digits = [ch for ch in number if ch.isdigit()]
    return "***" + "".join(digits[-2:]) if digits else "***"


def redact_text(text: str | None) -> str:
    """Caller or agent words in a log line: only their length unless content logging is on."""
    if not text:
        return "''"
    if os.environ.get(CONTENT_ENV, "") in ("1", "true", "yes"):
        return repr(clean(text))
    return f"<{len(text)} chars>"


class SafeLogFilter(logging.Filter):
    """Escapes control characters in the formatted message (args included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not kill the log line
            message = f"{record.msg!r} {record.args!r}"
        if _CONTROL.search(message):
            if isinstance(record.args, tuple) and not _CONTROL.search(str(record.msg)):
                # Keep the args (some formatters, like uvicorn's access log, read them).
                record.args = tuple(_CONTROL.sub(_escape, a) if isinstance(a, str) else a for a in record.args)
            else:
                record.msg, record.args = _CONTROL.sub(_escape, message), None
        return True


def install(level: str = "INFO") -> None:
    """Configure voxline's loggers and Pipecat's loguru at ``level`` in this process.

    Runs in every server worker, not only in the parent, so a worker never logs at
    Pipecat's DEBUG default (which prints transcripts and TTS text).
    """
    import sys

    from loguru import logger as loguru_logger

    level = level.upper()
    root = logging.getLogger("voxline")
    root.setLevel(level)
    if not any(isinstance(f, SafeLogFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler.addFilter(SafeLogFilter())
        root.addHandler(handler)
        root.propagate = False
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        for h in logging.getLogger(name).handlers:
            if not any(isinstance(f, SafeLogFilter) for f in h.filters):
                h.addFilter(SafeLogFilter())
    loguru_logger.remove()
    # Pipecat logs every processor's setup, and frame contents, at DEBUG: keep INFO+.
    loguru_logger.add(sys.stderr, level="DEBUG" if level == "DEBUG" else max_level(level, "INFO"),
                      filter=lambda r: not _CONTROL.search(r["message"]) or _rewrite(r))


def max_level(a: str, b: str) -> str:
    return a if logging.getLevelName(a) >= logging.getLevelName(b) else b


def _rewrite(record: dict) -> bool:
    record["message"] = _CONTROL.sub(_escape, record["message"])
    return True
