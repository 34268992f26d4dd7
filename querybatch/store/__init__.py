"""Persistence: SQLAlchemy tables, Alembic migrations and the repository API."""
