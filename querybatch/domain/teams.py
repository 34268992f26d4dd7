"""Tenants as teams: the stable numeric id the Supermetrics SDK's team-scoped paths carry."""

from __future__ import annotations

import hashlib

TEAM_ID_BITS = 48  # below 2**53, so JavaScript clients read it exactly too


def team_id_of(account: str) -> int:
    """The team id of ``account``: the same on every node and after every restart.

    It is derived from the account's name, so nothing needs storing; it is never 0. Two
    accounts could in principle share one, which only shows: a team-scoped path is always
    checked against the caller's own id and answers the caller's own data.
    """
    digest = hashlib.sha256(b"querybatch-team:" + account.encode("utf-8")).digest()
    return int.from_bytes(digest[: TEAM_ID_BITS // 8], "big") or 1
