"""Validating a bulk batch's file: every line must be one operation the server can run.

All lines are read, whatever the first error, so that the results file of a batch that
failed validation names every bad line and why. Parsing runs on a worker thread a chunk's
worth of lines at a time (it is CPU work), and each distinct query shape is checked against
its data source once, as for query batches.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
from pydantic import ValidationError

from querybatch.domain.bulk import LineStatus
from querybatch.domain.query import DataRequest, QuerySpec, SpecError, build_spec
from querybatch.engine.bulk_io import ChunkWriter, Line, new_file, read_lines
from querybatch.engine.planner import Planner
from querybatch.store.store import Store

MAX_LINE_BYTES = 1024 * 1024
_QUERY_INDEX = re.compile(r"^queries\[(\d+)\]\.?(.*)$")


@dataclass(frozen=True, slots=True)
class BadLine:
    """Why one line is not a runnable operation."""

    number: int
    message: str
    description: str | None = None

    @classmethod
    def of_batch_error(cls, exc: SpecError) -> BadLine:
        """The line a query batch refused (``queries[i].param``): line i + 1."""
        match = _QUERY_INDEX.match(exc.parameter)
        number = int(match.group(1)) + 1 if match else 0
        name = (match.group(2) if match else exc.parameter) or "operation"
        return cls(number, _invalid(name), str(exc))

    def as_json(self) -> bytes:
        """The line of the results file that names it."""
        error: dict[str, Any] = {"code": "BAD_REQUEST", "message": self.message}
        if self.description:
            error["description"] = self.description
        entry = {"line": self.number, "status": LineStatus.INVALID.value, "error": error}
        return orjson.dumps(entry) + b"\n"


@dataclass(slots=True)
class Checked:
    """The outcome of validation: the operations (when all lines are good) and the counts."""

    queries: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    bad: int = 0
    result_file_id: str | None = None


class FileChecker:
    """Validates the lines of one batch file, writing bad ones to a results file."""

    def __init__(self, store: Store, planner: Planner, today: date, max_operations: int) -> None:
        self.store = store
        self.planner = planner
        self.today = today
        self.max_operations = max_operations
        self._shapes: dict[str, SpecError | None] = {}
        self._errors: ChunkWriter | None = None

    async def check(self, account: str, batch_id: str, file_id: str) -> Checked:
        """Read and validate every line of ``file_id``."""
        checked = Checked()
        async for lines in read_lines(self.store, file_id, MAX_LINE_BYTES):
            parsed = await asyncio.to_thread(_parse, lines, self.today)
            for number, outcome in parsed:
                checked.total += 1
                if isinstance(outcome, BadLine):
                    await self.reject(checked, account, batch_id, outcome)
                    continue
                raw, spec = outcome
                problem = await self._shape_error(spec)
                if problem is not None:
                    bad = BadLine(number, _invalid(problem.parameter), str(problem))
                    await self.reject(checked, account, batch_id, bad)
                elif checked.total > self.max_operations:
                    if checked.total == self.max_operations + 1:
                        message = f"The file holds more than {self.max_operations} operations"
                        await self.reject(checked, account, batch_id, BadLine(number, message))
                elif not checked.bad:
                    checked.queries.append(raw)
        if checked.total == 0:
            await self.reject(checked, account, batch_id, BadLine(0, "The file holds no line"))
        await self.finish(checked)
        return checked

    async def reject(self, checked: Checked, account: str, batch_id: str, bad: BadLine) -> None:
        """Count a bad line and write it to the results file (created on the first one)."""
        checked.bad += 1
        checked.queries.clear()  # nothing is processed once any line is bad
        if self._errors is None:
            file_id = await new_file(self.store, account, "result", batch_id)
            self._errors = ChunkWriter(self.store, file_id)
            checked.result_file_id = file_id
        await self._errors.write(bad.as_json())

    async def finish(self, checked: Checked) -> None:
        """Complete the results file, if there is one."""
        if self._errors is not None:
            await self._errors.close()

    async def _shape_error(self, spec: QuerySpec) -> SpecError | None:
        # Bulk files repeat one query shape for many accounts and dates: check each once.
        key = spec.shape(self.today).fingerprint()
        if key not in self._shapes:
            try:
                await self.planner.check(spec)
                self._shapes[key] = None
            except SpecError as exc:
                self._shapes[key] = exc
        return self._shapes[key]


Parsed = tuple[int, "BadLine | tuple[dict[str, Any], QuerySpec]"]


def _parse(lines: list[Line], today: date) -> list[Parsed]:
    return [(line.number, _parse_line(line, today)) for line in lines]


def _parse_line(line: Line, today: date) -> BadLine | tuple[dict[str, Any], QuerySpec]:
    number = line.number
    if line.data is None:
        return BadLine(number, f"The line is longer than {MAX_LINE_BYTES} bytes")
    if not line.data.strip():
        return BadLine(number, "The line is empty", "Each line must hold one operation.")
    try:
        raw = orjson.loads(line.data)
    except orjson.JSONDecodeError as exc:
        return BadLine(number, "The line is not valid JSON", str(exc))
    if not isinstance(raw, dict):
        return BadLine(number, "The line must be a JSON object (one operation)")
    try:
        request = DataRequest.model_validate(raw)
        return raw, build_spec(request, today)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "operation"
        return BadLine(number, _invalid(name), str(first["msg"]))
    except SpecError as exc:
        return BadLine(number, _invalid(exc.parameter), str(exc))


def _invalid(parameter: str) -> str:
    return f"Invalid value for parameter '{parameter}'"
