"""Action names (one per route) and the roles that allow or deny them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# action -> what it lets a key do; the README's table is generated from this mapping.
# Rows are data whatever route returns them, so every route that returns rows (or starts
# queries) needs get_data as well as its own action: denying get_data stops all data access.
ACTIONS: dict[str, str] = {
    "get_data": "run or poll a query through /query/data/{format}; read rows by any route",
    "get_query_status": "read a query's status through /query/status (its rows need get_data)",
    "get_query_results": "page through a finished query's rows (/query/results; needs get_data)",
    "get_query_history": "list the key's recent queries and their statuses (/query/history)",
    "get_accounts": "list a data source's logins and accounts",
    "get_fields": "list a data source's fields",
    "get_segments": "list a data source's segments",
    "create_query_batch": "create a query batch (needs get_data)",
    "list_query_batches": "list the tenant's query batches",
    "get_query_batch": "read a query batch",
    "get_query_batch_status": (
        "read the per-query status of a query batch, and the tenant's activity (/query/activity)"
    ),
    "cancel_query_batch": "cancel a query batch",
    "download_query_batch": "download all results of a query batch as one file (needs get_data)",
    "create_upload_url": "get a signed upload URL for a bulk batch file",
    "delete_upload_url": "withdraw an upload URL",
    "create_batch": "create a bulk file batch (needs its operation's action: get_data)",
    "get_batches": "list bulk file batches",
    "get_batch": "read a bulk file batch, and get its download link (needs get_data)",
    "update_batch": "cancel a bulk file batch",
    "delete_batch": "delete a bulk file batch and its files",
    "who_am_i": "say which account, key and role the key is (/whoami)",
    "manage_keys": "create, list and revoke the account's keys, within its own role",
    "manage_roles": "create, list, change and delete the account's roles, within its own role",
    "list_destinations": "list the team's destinations (warehouses, file stores)",
    "get_destination": "read a destination and which transfers use it (never its secrets)",
    "manage_destinations": "create, change, test and delete destinations",
    "list_transfers": "list the team's transfers and what a transfer may use (sources, options)",
    "get_transfer": "read a transfer's configuration and its runs",
    "manage_transfers": "create, validate, change, pause, resume and delete transfers",
    "manage_backfills": "start a transfer's backfill over past data dates, and cancel one",
}

# The viewer watches: statuses, batches, sources' metadata; it reads no rows (no get_data),
# so the actions that only read rows are not listed.
VIEWER_ACTIONS = (
    "who_am_i",
    "get_query_history",
    "get_query_status",
    "get_accounts",
    "get_fields",
    "get_segments",
    "list_query_batches",
    "get_query_batch",
    "get_query_batch_status",
    "get_batches",
    "get_batch",
    "list_destinations",
    "get_destination",
    "list_transfers",
    "get_transfer",
)

Effect = Literal["allow", "deny"]


@dataclass(frozen=True, slots=True)
class Statement:
    """A role's statement: with allow, only ``actions``; with deny, all but ``actions``."""

    effect: Effect
    actions: frozenset[str]

    def permits(self, action: str) -> bool:
        """Whether a key with this statement may perform ``action``."""
        listed = action in self.actions
        return listed if self.effect == "allow" else not listed

    def beyond(self, holder: Statement) -> list[str]:
        """The actions this statement permits and ``holder`` does not, sorted.

        A key may only create, change, remove or revoke what lies within its own role:
        anything listed here is more than the holder may grant or take away.
        """
        return sorted(a for a in ACTIONS if self.permits(a) and not holder.permits(a))


BUILTIN_ROLES: dict[str, Statement] = {
    "admin": Statement("deny", frozenset()),
    "analyst": Statement("deny", frozenset({"manage_keys", "manage_roles"})),
    "viewer": Statement("allow", frozenset(VIEWER_ACTIONS)),
}


def unknown_actions(actions: list[str] | tuple[str, ...] | frozenset[str]) -> list[str]:
    """The names in ``actions`` that are not actions of this server."""
    return sorted(a for a in actions if a not in ACTIONS)


ROLE_NAME = r"^[a-z][a-z0-9_-]{0,63}$"
"""What a custom role's name looks like."""


def actions_table() -> list[str]:
    """The README's "Roles and actions" table, as Markdown lines (a test keeps them equal)."""
    roles = list(BUILTIN_ROLES)
    lines = [
        "| action | lets a key | " + " | ".join(roles) + " |",
        "|---|---|" + "---|" * len(roles),
    ]
    for action, meaning in ACTIONS.items():
        marks = " | ".join("yes" if BUILTIN_ROLES[r].permits(action) else "-" for r in roles)
        lines.append(f"| `{action}` | {meaning} | {marks} |")
    return lines
