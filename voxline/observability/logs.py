"""Structured JSON logs: one JSON object a line, the call id first.

``VOXLINE_LOG_FORMAT=json`` (or :func:`install_json`) after ``logsafe.install``: voxline's
log lines (which start with the call's id, or ``-`` when there is none) become
``{"call_id": ..., "ts": ..., "level": ..., "logger": ..., "msg": ...}``. The message
is the same text as before — numbers and caller words are redacted where they are
logged (``logsafe.redact_number``/``redact_text``), and control characters escaped.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime

FORMAT_ENV = "VOXLINE_LOG_FORMAT"
# A leading token that names a call: a CallSid, a hex or uuid id, or "-" for none.
_CALL_ID = re.compile(r"^(-|[A-Za-z0-9][A-Za-z0-9._:-]{5,63})\s+(.*)$", re.DOTALL)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        call_id = getattr(record, "call_id", None)
        if call_id is None:
            match = _CALL_ID.match(message)
            if match and (match.group(1) == "-" or any(c.isdigit() for c in match.group(1))):
                call_id, message = match.group(1), match.group(2)
        out: dict[str, object] = {"call_id": None if call_id == "-" else call_id}
        out["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        out["level"] = record.levelname
        out["logger"] = record.name
        out["msg"] = message
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out, ensure_ascii=False)


def install_json() -> None:
    """Give voxline's and uvicorn's handlers the JSON formatter (after logsafe.install)."""
    formatter = JsonFormatter()
    for name in ("voxline", "uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)


def install_from_env() -> bool:
    if os.environ.get(FORMAT_ENV, "").lower() == "json":
        install_json()
        return True
    return False
