"""The Alembic migrations of the store's schema (``versions/``, run by ``env.py``)."""

# The newest migration. A store already at it starts without loading Alembic at all; a unit
# test holds this equal to the head of ``versions/``, so a new migration must move it.
HEAD = "0017"
# Where Alembic records the migration a database is at (its default name).
VERSION_TABLE = "alembic_version"
