"""Logging without secrets, as readable lines or JSON lines.

Request lines carry ``api_key=`` and link ``signature=`` parameters, ``json=`` objects holding
a key, and callback or data-source URLs may hold ``user:password@``. Redaction happens when a
record is made (a record factory, see :func:`install`), not in a handler's filter, so that
every handler sees it: uvicorn's, Celery's, and any an operator configures later. Fields a
record carries beside its message (``extra=``) are set after the factory ran, so the JSON
formatter redacts what it writes once more.

Lifecycle events (:func:`event`) are one readable line each, and in JSON lines (``QB_LOG_FORMAT
=json``) they also carry their ids and counts as fields, with ``event`` naming what happened.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote_plus

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from querybatch.errors import StoreUnavailable

REDACTED = "[REDACTED]"
ACCESS_LOGGER = "uvicorn.access"
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)-5s %(message)s"
TEXT_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Loggers that other libraries configure with handlers of their own: their records go to the
# one handler of the root logger instead, in the chosen format.
_FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "celery")

# Parameter names that hold a credential: these words alone or at the end of a longer name
# after a separator (x_api_key, access_token, client_secret, ...).
_SECRET_WORDS = ("key", "apikey", "token", "signature", "password", "passwd", "secret")

# Every pattern starts only where a run of name characters starts (the lookbehinds) and
# scans a run once (lazy or possessive quantifiers): linear time on any log line, which
# may hold a client's URL.
_AUTHORIZATION = re.compile(
    r"(?i)(?<![\w.\-])(authorization[\"']?\s*+[:=]\s*+[\"']?)"
    r"(?:(bearer|basic|token)\s++)?(?!\[REDACTED\])[^\s\"',;}]++"
)
_BEARER = re.compile(r"(?i)(?<![\w.\-])(bearer|basic)\s++(?!\[REDACTED\])[\w.~+/=\-]{8,}+")
# name=value in query strings and forms, "name": "value" in JSON, 'name': 'value' in reprs;
# a quoted value ends at its closing quote (it may hold spaces).
_NAME = rf"(?:[\w.\-]*?[_.\-])?(?:{'|'.join(_SECRET_WORDS)})"
_QUOTED_PAIR = re.compile(
    rf"(?i)(?<![\w.\-])((\\?[\"']){_NAME}\2\s*+:\s*+(\\?[\"']))(?!\[REDACTED\])(?:(?!\3).)*+"
)
_PAIR = re.compile(
    rf"(?i)(?<![\w.\-])(\\?[\"']?{_NAME}\\?[\"']?\s*+[=:]\s*+\\?[\"']?)"
    r"(?!\[REDACTED\])[^\s\"'\\&,;}<>#]++"
)
_USERINFO = re.compile(r"(?i)(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]*+://)[^/\s@\"'<>]++@")
# A key of this server's own shape, wherever it turns up: kept to its public prefix.
_OWN_KEY = re.compile(r"(?<![\w\-])(qb_[\w\-]{7})[\w\-]{13,}+")


def is_secret_name(name: str) -> bool:
    """Whether a parameter called ``name`` holds a credential."""
    name = name.lower()
    for word in _SECRET_WORDS:
        if name == word or (name.endswith(word) and name[-len(word) - 1] in "_.-"):
            return True
    return False


def redact(text: str) -> str:
    """``text`` with credentials replaced by [REDACTED]."""
    text = _AUTHORIZATION.sub(lambda m: m[1] + (f"{m[2]} " if m[2] else "") + REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m[1]} {REDACTED}", text)
    text = _QUOTED_PAIR.sub(lambda m: m[1] + REDACTED, text)
    text = _PAIR.sub(lambda m: m[1] + REDACTED, text)
    text = _USERINFO.sub(lambda m: m[1] + REDACTED + "@", text)
    return _OWN_KEY.sub(lambda m: m[1] + REDACTED, text)


def redact_target(target: str) -> str:
    """A request target (path and query string) with credential parameters redacted.

    Values are decoded before they are looked at, so that a key inside a percent-encoded
    ``json=`` object is found too.
    """
    path, mark, query = target.partition("?")
    if not mark:
        return redact(path)
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and is_secret_name(unquote_plus(name)):
            pairs.append(f"{name}={REDACTED}")
            continue
        decoded = unquote_plus(value)
        cleaned = redact(decoded)
        pairs.append(pair if cleaned == decoded else f"{name}={quote(cleaned, safe='[]')}")
    return redact(path) + "?" + "&".join(pairs)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message, arguments and traceback without credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.name == ACCESS_LOGGER
            and isinstance(record.args, tuple)
            and len(record.args) == 5
        ):
            # uvicorn's access formatter needs its five arguments; the third is the target.
            args = list(record.args)
            args[2] = redact_target(str(args[2]))
            record.args = tuple(args)
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for logging to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_redaction() -> None:
    """Redact every record this process makes from now on (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts", False):
        return
    redactor = RedactSecrets()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        redactor.filter(record)
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def redact_value(name: str, value: Any) -> Any:
    """A log field's value without credentials (the whole value if its name is a secret's)."""
    if is_secret_name(name):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value("", v) for v in value]
    return value


class JsonLines(JsonFormatter):
    """One JSON object per record: ts, level, logger, message, then the record's fields."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"
        )
        super().add_fields(log_data, record, message_dict)
        if record.name == ACCESS_LOGGER and isinstance(record.args, tuple):
            if len(record.args) == 5:
                client, method, target, _, status = record.args
                log_data.update(client=client, method=method, path=target, status=status)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: redact_value(key, value) for key, value in log_data.items()}


def check_format(fmt: str) -> str:
    """``fmt`` if it names a log format, else ValueError saying which ones there are."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    return fmt


def install(fmt: str = "text", level: int | str = logging.INFO) -> None:
    """Redact every record, and write this process's logs to standard error as readable
    lines (``text``) or JSON lines (``json``): querybatch's, uvicorn's and Celery's alike.

    ``level`` applies to every logger; querybatch's own events are kept at INFO or finer, so
    that a quiet ``--log-level warning`` still says when batches start and stop.
    """
    install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    if check_format(fmt) == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, TEXT_DATE_FORMAT))
    handler.qb_installed = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "qb_installed", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    numeric = numeric if isinstance(numeric, int) else logging.INFO
    root.setLevel(numeric)
    logging.getLogger("querybatch").setLevel(min(numeric, logging.INFO))
    # Migrations say which engine they use and each step at INFO: noise at every start.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    for name in _FOREIGN_LOGGERS:
        foreign = logging.getLogger(name)
        foreign.handlers.clear()
        foreign.propagate = True


def event(
    logger: logging.Logger, name: str, template: str, /, level: int = logging.INFO, **fields: Any
) -> None:
    """Log a lifecycle event ``name``: the line is ``template`` filled in with ``fields``,
    which a JSON line also carries as fields of their own (ids, counts, reasons)."""
    if logger.isEnabledFor(level):
        logger.log(level, template.format(**fields), extra={"event": name, **fields})


def retrying(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """Log that ``what`` failed and will be tried again: one line when the store is
    unreachable (an outage repeats every round), a traceback for anything else (a bug)."""
    if isinstance(exc, StoreUnavailable):
        logger.warning("%s, retrying: %s", what, exc)
    else:
        logger.error("%s; retrying", what, exc_info=exc)
