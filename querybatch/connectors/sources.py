"""Building the data sources of a server: the demo ones and those of the sources file.

The sources file (``QB_SOURCES`` or ``querybatch serve --sources FILE``) is TOML, or YAML when
its name ends in ``.yaml``/``.yml``, with one table per source under ``sources``, keyed by its
``ds_id``; ``connector`` names the connector type and the other keys are that type's settings.
Every mistake is one ConfigurationError whose message names the source and the key
(``sources.SHOP.table: field required``); docs/connectors.md describes the format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from querybatch.connectors.base import Connector
from querybatch.connectors.demo import demo_sources
from querybatch.connectors.registry import SourceRegistry, connector_types
from querybatch.errors import ConfigurationError
from querybatch.settings import Settings

__all__ = ["build_source", "build_sources", "load_sources", "read_sources_file"]

DS_ID = re.compile(r"[A-Za-z0-9_-]{1,50}")
_MAX_PROBLEMS = 3


def build_sources(settings: Settings) -> SourceRegistry:
    """The data sources this server offers: the demo ones, then the file's (which win)."""
    sources: dict[str, Connector] = {}
    if settings.demo_sources:
        sources.update(
            demo_sources(
                latency_ms=settings.demo_latency_ms,
                fail_accounts=settings.demo_fail_accounts,
                rows_per_day=settings.demo_rows_per_day,
            )
        )
    if settings.sources is not None:
        sources.update(load_sources(settings.sources))
    return SourceRegistry(sources)


def load_sources(
    path: Path, types: Mapping[str, type[Connector]] | None = None
) -> dict[str, Connector]:
    """Every source of the file at ``path``, built through the installed connector types."""
    table = read_sources_file(path)
    known = connector_types() if types is None else types
    return {ds_id: build_source(ds_id, values, known) for ds_id, values in table.items()}


def read_sources_file(path: Path) -> dict[str, Any]:
    """The ``sources`` table of the file: ds_id -> raw settings."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"sources file {path}: cannot read it ({exc.strerror or exc})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"sources file {path}: not UTF-8 text") from exc
    document = _parse(path, text)
    if not isinstance(document, Mapping) or "sources" not in document:
        raise ConfigurationError(
            f"sources file {path}: no sources table (each source is a table sources.<ds_id>)"
        )
    stray = sorted(str(key) for key in document if key != "sources")
    if stray:
        raise ConfigurationError(f"sources file {path}: unknown top-level key {stray[0]!r}")
    sources = document["sources"]
    if not isinstance(sources, Mapping):
        raise ConfigurationError(f"sources file {path}: sources must be a table of sources")
    return {str(ds_id): values for ds_id, values in sources.items()}


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ConfigurationError(
                f"sources file {path}: invalid YAML: {problem}{where}"
            ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"sources file {path}: invalid TOML: {exc}") from None


def build_source(ds_id: str, values: Any, types: Mapping[str, type[Connector]]) -> Connector:
    """One source from its raw settings; ConfigurationError names the source and the key."""
    prefix = f"sources.{ds_id}"
    if DS_ID.fullmatch(ds_id) is None:
        raise ConfigurationError(
            f"{prefix}: a ds_id is 1 to 50 letters, digits, underscores or hyphens"
        )
    if not isinstance(values, Mapping):
        raise ConfigurationError(f"{prefix}: expected a table of settings")
    settings = dict(values)
    connector = settings.pop("connector", None)
    if connector is None:
        raise ConfigurationError(f"{prefix}.connector: field required")
    if not isinstance(connector, str) or connector not in types:
        installed = ", ".join(sorted(types)) or "none"
        raise ConfigurationError(
            f"{prefix}.connector: unknown connector type {connector!r} (installed: {installed})"
        )
    try:
        return types[connector].from_mapping(ds_id, settings)
    except ValidationError as exc:
        raise ConfigurationError(describe_errors(prefix, exc)) from None


def describe_errors(prefix: str, exc: ValidationError) -> str:
    """pydantic's errors as ``sources.SHOP.table: field required``, on one line."""
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        kind = error["type"]
        if kind == "missing":
            message = "field required"
        elif kind == "extra_forbidden":
            message = "unknown key"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            message = message[:1].lower() + message[1:]
        problems.append(f"{prefix}.{where}: {message}" if where else f"{prefix}: {message}")
    text = "; ".join(problems[:_MAX_PROBLEMS])
    if len(problems) > _MAX_PROBLEMS:
        text += f" (and {len(problems) - _MAX_PROBLEMS} more)"
    return text
