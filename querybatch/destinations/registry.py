"""Destination types, discovered from the ``querybatch.destinations`` entry points."""

from __future__ import annotations

from importlib.metadata import entry_points

from querybatch.destinations.base import Destination
from querybatch.errors import ConfigurationError

ENTRY_POINT_GROUP = "querybatch.destinations"


def destination_types() -> dict[str, type[Destination]]:
    """Every installed destination type by its ``DWH_*`` name; a name claimed twice is an error.

    Types whose driver is not installed still load: they say so when used.
    """
    found: dict[str, type[Destination]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in found:
            raise ConfigurationError(
                f"destination type {entry.name!r} is installed twice ({entry.value} and "
                f"{found[entry.name].__module__}); uninstall one of them"
            )
        try:
            cls = entry.load()
        except Exception as exc:  # a broken plugin must not hide which one it was
            raise ConfigurationError(
                f"destination type {entry.name!r} failed to load: {exc}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, Destination)):
            raise ConfigurationError(
                f"destination type {entry.name!r} is not a Destination subclass"
            )
        if cls.type_name != entry.name:
            raise ConfigurationError(
                f"destination type {entry.name!r} names itself {cls.type_name!r}"
            )
        found[entry.name] = cls
    return found
