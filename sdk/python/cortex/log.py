"""Structured logging for Cortex agents.

    import cortex.log
    cortex.log.info("fetched page", url=url, bytes=n)

writes one JSON object per line to stdout:

    {"time":"2025-01-02T03:04:05.678Z","level":"info","msg":"fetched page","url":"...","bytes":123}

The Cortex log collector parses such lines (a JSON object with "msg" and
"level") into a structured record with the other keys as fields. Field
names "time", "level" and "msg" are reserved; such fields are written as
"field.time" etc. Values that are not JSON are written with str().
Levels: debug, info, warn, error. ``handler()`` gives a logging.Handler for
the standard library's logging module. Thread-safe.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from datetime import datetime, timezone
from typing import Any, Dict, Optional, TextIO

__all__ = ["debug", "info", "warn", "warning", "error", "exception", "log", "bind", "Logger", "handler"]

LEVELS = ("debug", "info", "warn", "error")
_RESERVED = ("time", "level", "msg")
_lock = threading.Lock()


def _default(o: Any) -> Any:
    if isinstance(o, BaseException):
        return f"{type(o).__name__}: {o}"
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    return str(o)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _emit(level: str, msg: Any, fields: Dict[str, Any], stream: Optional[TextIO] = None) -> None:
    rec: Dict[str, Any] = {"time": _now(), "level": level, "msg": str(msg)}
    for k, v in fields.items():
        k = str(k)
        rec["field." + k if k in _RESERVED else k] = v
    try:
        line = json.dumps(rec, default=_default, ensure_ascii=False, separators=(",", ":"))
    except ValueError:  # e.g. a circular reference
        line = json.dumps({k: (v if k in _RESERVED else _default(v)) for k, v in rec.items()}, ensure_ascii=False)
    out = stream or sys.stdout
    with _lock:
        try:
            out.write(line + "\n")
            out.flush()
        except (ValueError, OSError):  # stdout closed
            pass


class Logger:
    """A logger that adds ``fields`` to every record; see ``bind``."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def bind(self, **fields: Any) -> "Logger":
        return Logger(**{**self.fields, **fields})

    def log(self, level: str, msg: Any, /, **fields: Any) -> None:
        if level == "warning":
            level = "warn"
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}")
        _emit(level, msg, {**self.fields, **fields})

    def debug(self, msg: Any, /, **fields: Any) -> None:
        self.log("debug", msg, **fields)

    def info(self, msg: Any, /, **fields: Any) -> None:
        self.log("info", msg, **fields)

    def warn(self, msg: Any, /, **fields: Any) -> None:
        self.log("warn", msg, **fields)

    warning = warn

    def error(self, msg: Any, /, **fields: Any) -> None:
        self.log("error", msg, **fields)

    def exception(self, msg: Any, /, **fields: Any) -> None:
        """Log at error level with the exception being handled as "error"
        and its traceback as "traceback"."""
        et, ev, tb = sys.exc_info()
        if ev is not None:
            fields.setdefault("error", f"{et.__name__}: {ev}")
            fields.setdefault("traceback", "".join(traceback.format_exception(et, ev, tb)))
        self.log("error", msg, **fields)


_root = Logger()


def bind(**fields: Any) -> Logger:
    """A Logger that adds ``fields`` to every record."""
    return _root.bind(**fields)


def log(level: str, msg: Any, /, **fields: Any) -> None:
    _root.log(level, msg, **fields)


def debug(msg: Any, /, **fields: Any) -> None:
    _root.log("debug", msg, **fields)


def info(msg: Any, /, **fields: Any) -> None:
    _root.log("info", msg, **fields)


def warn(msg: Any, /, **fields: Any) -> None:
    _root.log("warn", msg, **fields)


warning = warn


def error(msg: Any, /, **fields: Any) -> None:
    _root.log("error", msg, **fields)


def exception(msg: Any, /, **fields: Any) -> None:
    _root.exception(msg, **fields)


_LEVEL_OF = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn"}


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = _LEVEL_OF.get(record.levelno, "error" if record.levelno >= logging.ERROR else "debug")
            fields: Dict[str, Any] = {"logger": record.name}
            if record.exc_info and record.exc_info[1] is not None:
                et, ev, tb = record.exc_info
                fields["error"] = f"{et.__name__}: {ev}"
                fields["traceback"] = "".join(traceback.format_exception(et, ev, tb))
            extra = getattr(record, "fields", None)
            if isinstance(extra, dict):
                fields.update(extra)
            _emit(level, record.getMessage(), fields)
        except Exception:
            self.handleError(record)


def handler(level: int = logging.NOTSET) -> logging.Handler:
    """A logging.Handler writing cortex.log records; extra={"fields": {...}}
    on a logging call adds fields."""
    return _Handler(level)
