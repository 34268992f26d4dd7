"""Credentials never reach a log line: request targets, messages and tracebacks are redacted."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from querybatch.errors import StoreUnavailable
from querybatch.logs import (
    REDACTED,
    JsonLines,
    RedactSecrets,
    check_format,
    event,
    install_redaction,
    redact,
    redact_target,
    retrying,
)

KEY = "qb_Abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (f"/query/data/json?api_key={KEY}&ds_id=X", f"/query/data/json?api_key={REDACTED}&ds_id=X"),
        (
            "/cache/upl_1?expires=1.5&signature=abcd",
            f"/cache/upl_1?expires=1.5&signature={REDACTED}",
        ),
        (
            "/x?access_token=t&client_secret=s&Password=p",
            f"/x?access_token={REDACTED}&client_secret={REDACTED}&Password={REDACTED}",
        ),
        ("/x?x-api-key=1&key=2", f"/x?x-api-key={REDACTED}&key={REDACTED}"),
        ("/x?monkey=banana&tokens=5&keys=a", "/x?monkey=banana&tokens=5&keys=a"),
        ("/query/status?schedule_id=abc", "/query/status?schedule_id=abc"),
    ],
)
def test_credential_parameters_of_a_request_target_are_redacted(target: str, expected: str) -> None:
    assert redact_target(target) == expected


def test_a_key_inside_a_percent_encoded_json_parameter_is_redacted() -> None:
    target = "/query/data/json?json=%7B%22api_key%22%3A%22" + KEY + "%22%2C%22ds_id%22%3A%22X%22%7D"
    cleaned = redact_target(target)
    assert KEY not in cleaned and KEY[:10] not in cleaned
    assert "ds_id" in cleaned


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {KEY}",
        f'headers {{"authorization": "{KEY}"}}',
        f"{{'api_key': '{KEY}', 'x': 1}}",
        f'body {{"api_key":"{KEY}"}}',
        f"callback to https://user:{KEY}@example.com/hook failed",
        f"a key pasted alone: {KEY}",
    ],
)
def test_credentials_in_free_text_are_redacted(text: str) -> None:
    assert KEY not in redact(text)
    assert KEY[12:] not in redact(text)


def test_a_quoted_secret_is_redacted_up_to_its_closing_quote() -> None:
    assert redact('{"password": "two words", "user": "u"}') == (
        f'{{"password": "{REDACTED}", "user": "u"}}'
    )


def test_text_without_credentials_is_left_alone() -> None:
    text = "put 3 interrupted sub-queries back; key qb_abcdefg (prefix) of account acme"
    assert redact(text) == text


def test_redaction_takes_linear_time_on_hostile_input() -> None:
    # Several MB of patterns that make a backtracking matcher quadratic; the test fails by
    # taking minutes instead of well under a second per pattern.
    for hostile in ("a." * 100_000, "qb-" * 100_000, "a://" * 50_000, '"a":"' * 50_000):
        redact(hostile)
        redact_target("/p?" + hostile)


def access_record(target: str) -> logging.LogRecord:
    """uvicorn's access record of a GET of ``target`` answered 200."""
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", target, "1.1", 200),
        None,
    )


def test_the_access_log_record_keeps_its_five_arguments_with_the_target_redacted() -> None:
    record = access_record(f"/query/status?api_key={KEY}")
    RedactSecrets().filter(record)
    assert record.args == ("127.0.0.1:1", "GET", f"/query/status?api_key={REDACTED}", "1.1", 200)


def test_every_record_made_after_installing_redaction_is_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    previous = logging.getLogRecordFactory()
    install_redaction()
    try:
        try:
            raise ValueError(f"refused https://u:{KEY}@db.example/x")
        except ValueError:
            logging.getLogger("querybatch.test").exception(
                "callback to %s", f"http://h/?token={KEY}"
            )
    finally:
        logging.setLogRecordFactory(previous)
    assert caplog.records
    assert KEY not in caplog.text
    assert KEY[12:] not in caplog.text


def json_line(record: logging.LogRecord) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(JsonLines().format(record))
    return parsed


def make_record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    """A record as a logger makes it after install_redaction: factory first, extras after."""
    previous = logging.getLogRecordFactory()
    install_redaction()
    try:
        logger = logging.getLogger("querybatch.test")
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 1, message, args, None, extra=extra
        )
    finally:
        logging.setLogRecordFactory(previous)
    return record


def test_a_json_line_has_time_level_logger_message_and_the_record_fields() -> None:
    line = json_line(make_record("batch %s created", "qrb_1", batch_id="qrb_1", queries=3))
    assert list(line)[:4] == ["ts", "level", "logger", "message"]
    assert line["level"] == "INFO" and line["logger"] == "querybatch.test"
    assert line["message"] == "batch qrb_1 created"
    assert line["batch_id"] == "qrb_1" and line["queries"] == 3


def test_credentials_in_the_fields_of_a_json_line_are_redacted() -> None:
    record = make_record(
        "callback failed",
        url=f"https://u:{KEY}@hooks.example/x",
        api_key=KEY,
        details={"token": "t0ken-value", "note": f"Bearer {KEY}"},
    )
    text = JsonLines().format(record)
    assert KEY not in text and KEY[12:] not in text and "t0ken-value" not in text
    line = json.loads(text)
    assert line["api_key"] == REDACTED
    assert line["details"]["token"] == REDACTED


def test_a_traceback_in_a_json_line_is_redacted() -> None:
    try:
        raise ValueError(f"refused https://u:{KEY}@db.example/x")
    except ValueError:
        record = make_record("store failed")
        record.exc_info = sys.exc_info()
    assert KEY not in JsonLines().format(record)


def test_an_access_record_becomes_a_json_line_with_its_request_fields() -> None:
    record = access_record(f"/query/status?api_key={KEY}")
    RedactSecrets().filter(record)
    line = json_line(record)
    assert line["method"] == "GET" and line["status"] == 200
    assert line["path"] == f"/query/status?api_key={REDACTED}"
    assert KEY not in str(line)


def test_an_event_is_one_readable_line_and_carries_its_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("querybatch.test")
    with caplog.at_level(logging.INFO, logger="querybatch.test"):
        event(logger, "batch_created", "batch {batch_id} created", batch_id="qrb_2")
    (record,) = caplog.records
    assert record.getMessage() == "batch qrb_2 created"
    assert record.__dict__["event"] == "batch_created"
    assert record.__dict__["batch_id"] == "qrb_2"


def test_an_unknown_log_format_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="text, json"):
        check_format("xml")


def test_a_round_that_failed_on_a_store_outage_is_one_line_and_a_bug_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("querybatch.test_retrying")
    caplog.set_level(logging.INFO, logger="querybatch")
    retrying(logger, "expiry pass failed", StoreUnavailable("The database is unavailable"))
    try:
        raise KeyError("bug")
    except KeyError as exc:
        retrying(logger, "expiry pass failed", exc)
    outage, bug = caplog.records
    assert (outage.levelno, outage.getMessage(), outage.exc_info) == (
        logging.WARNING,
        "expiry pass failed, retrying: The database is unavailable",
        None,
    )
    assert (bug.levelno, bug.getMessage()) == (logging.ERROR, "expiry pass failed; retrying")
    assert bug.exc_info is not None and bug.exc_info[0] is KeyError
