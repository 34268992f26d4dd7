"""Alembic environment: runs on the connection querybatch hands it (or on -x url=...)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from querybatch.store.tables import metadata


def run() -> None:
    """Run the migrations on the given connection, or on a fresh one for offline use."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        url = context.get_x_argument(as_dictionary=True).get("url")
        if not url:
            raise SystemExit("pass the database as: alembic -x url=sqlite:///path upgrade head")
        with create_engine(url).begin() as conn:
            _configure_and_run(conn)
        return
    _configure_and_run(connection)


def _configure_and_run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
