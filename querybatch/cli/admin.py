"""``querybatch keys`` and ``querybatch roles``: manage access directly in the server's store.

Keys and custom roles belong to an account (tenant), ``default`` unless ``--account`` names
another: a key's role is a built-in one (admin, analyst, viewer: every account's, never
changed) or a custom role of the key's own account. These commands act as the operator, so
no role limits them: they call the same Access methods as the /keys and /roles routes, as
the operator (the admin of the account they name).

Every command names the store it acts on, on standard error (``store: URL``, password hidden),
and refuses a store that does not exist yet rather than quietly making an empty one whose keys
no server knows; ``--init`` creates it as the server's first start would.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from querybatch.cli.common import app, console, errors, fail, settings_with
from querybatch.domain.actions import BUILTIN_ROLES, Effect
from querybatch.domain.teams import team_id_of
from querybatch.errors import BadRequest, Conflict, NotFound

if TYPE_CHECKING:
    # The engine (and with it SQLAlchemy and the store) is imported when a command runs,
    # not when the CLI starts: `querybatch --help` and client commands never need it.
    from querybatch.engine.access import Access, Manager

T = TypeVar("T")

keys_app = typer.Typer(
    help="Manage API keys (directly in the server's store).", no_args_is_help=True
)
roles_app = typer.Typer(help="Manage roles (directly in the server's store).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(roles_app, name="roles")

DEFAULT_ACCOUNT = "default"
Account = Annotated[
    str, typer.Option(help="The tenant (account) the roles belong to.", show_default=True)
]
Init = Annotated[
    bool,
    typer.Option(
        "--init",
        help="Create and migrate the store if it does not exist yet (otherwise refused).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON).")]


# -- keys and roles -------------------------------------------------------------------------


def _operator(account: str | None = None) -> Manager:
    """The operator as the Access methods know it: the admin of ``account``."""
    from querybatch.engine.access import Manager

    return Manager.operator(account)


def _run(call: Callable[[Access], Coroutine[Any, Any, T]], init: bool = False) -> T:
    """Run one Access call on the server's store, opened for it and closed after.

    The store is named on standard error (standard output stays the answer, for --json and
    --quiet), so that a key made in the wrong place is seen at once.
    """
    from querybatch.engine.factory import NoStore, open_access, store_url

    settings = settings_with()
    try:
        access = open_access(settings, create=init)
    except NoStore as exc:
        where = "QB_DATABASE_URL" if settings.database_url else "QB_DATABASE_URL or QB_DATA_DIR"
        raise fail(
            f"no querybatch store at {exc.url}: point {where} at the server's store, "
            "or pass --init to create one there"
        ) from None
    errors.print(f"store: {store_url(settings)}")
    try:
        return asyncio.run(call(access))
    finally:
        access.close()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    role: Annotated[
        str, typer.Option(help="Role: admin, analyst, viewer or a custom one.")
    ] = "analyst",
    account: Annotated[str, typer.Option(help="The tenant the key belongs to.")] = DEFAULT_ACCOUNT,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the key.")] = False,
    init: Init = False,
) -> None:
    """Create an API key and print it (it cannot be shown again)."""
    from querybatch.engine.access import check_key_account

    try:
        check_key_account(account)
    except BadRequest as exc:
        raise typer.BadParameter(
            f"{account!r} is not an account name", param_hint="--account"
        ) from exc
    try:
        record, secret = _run(
            lambda access: access.create_key(_operator(account), name, role), init
        )
    except BadRequest as exc:  # the account is checked: the role is what is wrong
        raise typer.BadParameter(
            f"unknown role {role!r} (for account {account!r})", param_hint="--role"
        ) from exc
    if not quiet:
        console.print(f"created key {record.id} ({record.role}, account {record.account}):")
    print(secret)


@keys_app.command("list")
def keys_list(
    account: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: AsJson = False,
    init: Init = False,
) -> None:
    """List API keys (never their secrets)."""
    records = _run(lambda access: access.list_keys(_operator(account)), init)
    rows: list[dict[str, Any]] = [
        {
            "id": r.id,
            "name": r.name,
            "prefix": r.prefix,
            "role": r.role,
            "account": r.account,
            "team_id": team_id_of(r.account),
            "created_at": r.created_at,
            "revoked": r.revoked_at is not None,
        }
        for r in records
    ]
    if as_json:
        console.print_json(data=rows)
        return
    table = Table("id", "name", "prefix", "role", "account", "team id", "revoked")
    for row in rows:
        table.add_row(
            row["id"],
            row["name"],
            row["prefix"] + "…",
            row["role"],
            row["account"],
            str(row["team_id"]),
            str(row["revoked"]),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    init: Init = False,
) -> None:
    """Revoke an API key; requests with it are refused from then on."""
    try:
        _run(lambda access: access.revoke_key(_operator(), key_id), init)
    except NotFound:
        raise fail(f"no active key {key_id}") from None
    console.print(f"revoked {key_id}")


@roles_app.command("list")
def roles_list(
    account: Account = DEFAULT_ACCOUNT,
    as_json: AsJson = False,
    init: Init = False,
) -> None:
    """List the built-in roles and the account's own, with their statements."""
    records = _run(lambda access: access.list_roles(_operator(account)), init)
    rows: list[dict[str, Any]] = [
        {"name": r.name, "effect": r.effect, "actions": list(r.actions), "builtin": r.builtin}
        for r in records
    ]
    if as_json:
        console.print_json(data=rows)
        return
    table = Table("name", "effect", "actions", "built in")
    for row in rows:
        table.add_row(
            row["name"], row["effect"], ", ".join(row["actions"]) or "-", str(row["builtin"])
        )
    console.print(table)


@roles_app.command("create")
def roles_create(
    name: Annotated[str, typer.Argument(help="The role's name (lower case, digits, _ and -).")],
    effect: Annotated[
        str, typer.Option(help="allow: only the actions listed; deny: all but them.")
    ],
    action: Annotated[
        list[str] | None, typer.Option("--action", help="An action name; repeat for more.")
    ] = None,
    account: Account = DEFAULT_ACCOUNT,
    init: Init = False,
) -> None:
    """Create a custom role of the account, or replace the statement of an existing one."""
    from querybatch.domain.actions import ROLE_NAME, unknown_actions

    actions = action or []
    if effect not in ("allow", "deny"):
        raise typer.BadParameter("must be allow or deny", param_hint="--effect")
    chosen: Effect = "allow" if effect == "allow" else "deny"
    if not re.fullmatch(ROLE_NAME, name):
        raise typer.BadParameter(f"must match {ROLE_NAME}", param_hint="NAME")
    unknown = unknown_actions(actions)
    if unknown:
        raise typer.BadParameter(
            f"unknown action(s): {', '.join(unknown)} (see README, Roles and actions)",
            param_hint="--action",
        )
    try:
        _, created = _run(
            lambda access: access.put_role(_operator(account), name, chosen, actions),
            init,
        )
    except Conflict:  # the only refusal left for the operator, the names checked above
        raise fail(f"role {name} is built in and cannot change") from None
    verb = "created" if created else "updated"
    console.print(f"{verb} role {name} of account {account} ({effect}: {len(actions)})")


@roles_app.command("delete")
def roles_delete(
    name: Annotated[str, typer.Argument(help="The custom role to delete.")],
    account: Account = DEFAULT_ACCOUNT,
    init: Init = False,
) -> None:
    """Delete a custom role of the account that no key uses."""
    try:
        _run(lambda access: access.delete_role(_operator(account), name), init)
    except (NotFound, Conflict) as exc:
        if isinstance(exc, NotFound):
            problem = f"account {account} has no custom role {name}"
        elif name in BUILTIN_ROLES:
            problem = f"role {name} is built in and cannot be deleted"
        else:
            problem = f"keys of account {account} use role {name} (revoked ones too)"
        raise fail(problem) from None
    console.print(f"deleted role {name} of account {account}")
