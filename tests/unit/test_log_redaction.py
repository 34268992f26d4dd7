"""Credentials never reach a log line: request targets, messages and tracebacks are redacted."""

from __future__ import annotations

import logging

import pytest

from querybatch.logs import REDACTED, RedactSecrets, install_redaction, redact, redact_target

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


def test_the_access_log_record_keeps_its_five_arguments_with_the_target_redacted() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", f"/query/status?api_key={KEY}", "1.1", 200),
        None,
    )
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
