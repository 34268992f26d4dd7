"""Repository methods that callers await, while the store decides which thread serves them.

A repository method is written as plain synchronous SQLAlchemy Core and marked ``@reads``,
``@point_reads`` or ``@writes``. Callers then write ``await store.jobs.get_query(...)``:
reads run on the reader threads, writes on the writer threads (again if they lost a
deadlock), and point reads (a few rows by key, on the polling path) on the caller's thread
when the database is SQLite, as ``Database`` arranges. Code that already runs on a thread
of its own (the CLI, migrations, tests) calls ``store.jobs.get_query.blocking(...)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, Generic, Literal, ParamSpec, Protocol, Self, TypeVar, overload

from querybatch.store.database import Database

P = ParamSpec("P")
Kind = Literal["read", "point", "write"]
T = TypeVar("T")


class Repository(Protocol):
    """Anything built on a database."""

    @property
    def db(self) -> Database:
        """The database the repository reads and writes."""
        ...


R = TypeVar("R", bound=Repository)


class StoreCall(Generic[R, P, T]):
    """A repository method as a descriptor: bound, it is awaited or called ``blocking``."""

    def __init__(self, fn: Callable[Concatenate[R, P], T], kind: Kind) -> None:
        self.fn = fn
        self.kind = kind
        self.__doc__ = fn.__doc__

    @overload
    def __get__(self, repo: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, repo: R, owner: type[Any]) -> BoundStoreCall[P, T]: ...

    def __get__(self, repo: R | None, owner: type[Any]) -> Self | BoundStoreCall[P, T]:
        if repo is None:
            return self
        return BoundStoreCall(functools.partial(self.fn, repo), repo.db, self.kind)


class BoundStoreCall(Generic[P, T]):
    """One repository's method: ``await`` it from the loop, or call ``blocking`` on a thread."""

    __slots__ = ("_db", "_fn", "_kind")

    def __init__(self, fn: Callable[P, T], db: Database, kind: Kind) -> None:
        self._fn = fn
        self._db = db
        self._kind = kind

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        if self._kind == "read":
            return await self._db.read(self._fn, *args, **kwargs)
        if self._kind == "point":
            return await self._db.read_point(self._fn, *args, **kwargs)
        return await self._db.write(self._fn, *args, **kwargs)

    async def point(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a read as a point read this time: the caller knows that what it asks for now
        is small (a status page of a poller's size, one chunk of rows). The method reads
        through :meth:`Database.point_reading`, so it is right on either path."""
        if self._kind == "write":
            raise TypeError("a write is never a point read")
        return await self._db.read_point(self._fn, *args, **kwargs)

    def blocking(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the call on the calling thread (never from the event loop)."""
        return self._fn(*args, **kwargs)


def reads(fn: Callable[Concatenate[R, P], T]) -> StoreCall[R, P, T]:
    """Mark a repository method that only reads: it runs on a reader thread."""
    return StoreCall(fn, "read")


def point_reads(fn: Callable[Concatenate[R, P], T]) -> StoreCall[R, P, T]:
    """Mark a repository method that reads a few rows by key, for the hottest polls: on
    SQLite it runs on the caller's thread (see :meth:`Database.read_point`)."""
    return StoreCall(fn, "point")


def writes(fn: Callable[Concatenate[R, P], T]) -> StoreCall[R, P, T]:
    """Mark a repository method that writes: it runs on a writer thread, retried on deadlock."""
    return StoreCall(fn, "write")
