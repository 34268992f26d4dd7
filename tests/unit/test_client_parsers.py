"""Parsers that let real clients in: bare keys, status filters, team ids, create templates."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from querybatch.api.auth import key_of_authorization
from querybatch.domain.bulk import BulkBatchRequest, BulkStatus, parse_statuses
from querybatch.domain.teams import team_id_of


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer qb_abc", "qb_abc"),
        ("bearer   qb_abc ", "qb_abc"),
        ("qb_abc", "qb_abc"),
        (" qb_abc ", "qb_abc"),
        ("Basic qb_abc", None),
        ("Bearer", "Bearer"),  # a bare word is a (wrong) key, refused as unknown
        ("Bearer ", "Bearer"),
        ("", None),
        ("Token qb_abc", None),
    ],
)
def test_an_authorization_header_yields_its_key(header: str, key: str | None) -> None:
    assert key_of_authorization(header) == key


def test_statuses_are_read_repeated_or_comma_separated() -> None:
    assert parse_statuses(["completed", "new,Cancelled"]) == {
        BulkStatus.COMPLETED,
        BulkStatus.NEW,
        BulkStatus.CANCELLED,
    }
    with pytest.raises(ValueError, match="'done' is not a batch status"):
        parse_statuses(["completed,done"])


def test_team_ids_are_stable_positive_and_differ_between_accounts() -> None:
    assert team_id_of("acme") == team_id_of("acme")
    assert team_id_of("acme") != team_id_of("globex")
    ids = {team_id_of(f"tenant-{n}") for n in range(1000)}
    assert len(ids) == 1000 and all(0 < i < 2**53 for i in ids)


def test_the_trusted_twin_create_template_is_accepted_and_batch_dict_describes() -> None:
    template = {"handler": "upl_x", "operation": "get_data", "hash": None, "batch_dict": None}
    assert BulkBatchRequest.model_validate(template).description is None
    described = BulkBatchRequest.model_validate({**template, "batch_dict": {"team": "ads"}})
    assert described.description == {"team": "ads"}
    with pytest.raises(ValidationError):
        BulkBatchRequest.model_validate({**template, "batch_dict": {"Not A Key": 1}})
    with pytest.raises(ValidationError):
        BulkBatchRequest.model_validate({**template, "extra": 1})
