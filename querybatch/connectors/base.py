"""The connector contract: what the engine asks of a data source.

A connector *type* (``demo``, ``sql``, ``files``, ``http`` or a plugin's) is a subclass of
:class:`Connector`; a configured data source (one ``ds_id``) is an instance of it. Connectors
never touch the store: they describe fields and accounts and produce rows; the engine
persists them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from querybatch.domain.fields import FieldInfo, Login, Row
from querybatch.domain.filters import Filter, OrderKey

INLINE_WORK = 2_000
"""Row operations (rows x (1 + filter conditions), or rows sorted) cheaper than a thread hop.

Work on rows below this runs on the event loop, a few milliseconds at most; anything larger
goes to a worker thread, so that no tenant's rows hold the loop for long.
"""


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One sub-query as a connector sees it: accounts, dates and fields to return."""

    ds_id: str
    accounts: tuple[str, ...]
    start_date: date
    end_date: date
    fields: tuple[str, ...]
    filter: Filter | None = None
    order_rows: tuple[OrderKey, ...] = ()
    max_rows: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    segments: tuple[str, ...] = ()
    users: tuple[str, ...] = ()


class ConnectorConfig(BaseModel):
    """Base of every connector's settings model (one table of the sources file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Connector(ABC):
    """One configured data source.

    Subclasses set ``config_model`` to the pydantic model of their settings and say in
    ``pushdown`` which of ``"filter"``, ``"order"`` and ``"limit"`` their :meth:`fetch`
    applies itself; the engine applies the rest to the rows it receives.
    """

    config_model: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    pushdown: ClassVar[frozenset[str]] = frozenset()
    # The per-query ``settings`` this source reads (name -> what it does), for clients that
    # describe a data source (the SDK's datasource_details).
    query_settings: ClassVar[Mapping[str, str]] = {}

    def __init__(self, ds_id: str, config: ConnectorConfig) -> None:
        self.ds_id = ds_id
        self.config = config

    @classmethod
    def from_mapping(cls, ds_id: str, values: Mapping[str, Any]) -> Connector:
        """Build the data source from its raw settings, validated by ``config_model``."""
        return cls(ds_id, cls.config_model.model_validate(dict(values)))

    async def open(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Check the source is reachable and its configuration matches it.

        Called once before the server listens; raise ``ConfigurationError`` naming the key
        that is wrong.
        """

    def check_settings(self, settings: Mapping[str, Any]) -> None:  # noqa: B027 - optional
        """Refuse a query's ``settings`` this source cannot take, before the query is accepted.

        Raise ``ConnectorError`` naming the setting and its allowed range; the query (or the
        whole batch) is then refused with 400 and nothing is stored. ``fetch`` may still see
        settings this did not refuse, and must bound whatever it reads from them.
        """

    @abstractmethod
    async def fields(self) -> Sequence[FieldInfo]:
        """Every field a query of this source may request."""

    @abstractmethod
    async def accounts(self, users: Sequence[str] = ()) -> Sequence[Login]:
        """The logins of this source and their accounts, limited to ``users`` when given."""

    @abstractmethod
    def fetch(self, request: FetchRequest) -> AsyncIterator[Sequence[Row]]:
        """Yield the rows of one sub-query in chunks, grouped by its dimensions.

        Rows hold the values of ``request.fields`` in that order, metrics aggregated over
        everything not requested. Raise ``AccountErrors`` for accounts that fail (before
        yielding rows where possible), ``TransientConnectorError`` for failures worth
        retrying, and ``ConnectorError`` for the rest.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release connections and files; the source is not used afterwards."""
