"""The results file: one JSON line per (config, problem), appended as each problem finishes.

Why JSONL and append-only: a crash or Ctrl-C loses at most the line being written. On opening, a torn last
line (a process killed mid-write) is cut off, so the next record starts on a clean line and the problem it
belonged to is simply run again; nothing is lost or counted twice. A later record for the same key
supersedes an earlier one (that is how ``--retry-failed`` replaces a failure).

One writer per file: a :class:`ResultStore` holds an OS lock on its file while it is open (two ``bench run``
processes on one ``--out`` would both send and record the same problems); a second gets
:class:`~thinkloop.exceptions.StoreLocked` naming the first, and only the lock's holder repairs a torn line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from thinkloop.exceptions import DatasetError
from thinkloop.runtime.locks import WriterLock

Status = Literal["done", "failed"]


class Record(BaseModel):
    """One problem's result under one config.

    ``correct`` is ``None`` for a failed problem: an infrastructure failure is not a wrong answer.
    ``pass_at_k`` says whether any of the ``k`` sampled answers was right (strategies that sample only).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    config: str
    strategy: str
    model: str
    dataset: str
    id: str
    status: Status
    prediction: str | None = None
    gold: str
    correct: bool | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    estimated_reasoning_tokens: int = 0
    """The part of ``reasoning_tokens`` the backend estimated because the server did not count it."""
    cached_tokens: int = 0
    calls: int = 0
    calls_without_usage: int = 0
    latency_s: float = 0.0
    cost: float = 0.0
    stop_reason: str | None = None
    verdict: str | None = None
    """The check's verdict on the answer (``passed``, ``failed``, ``unchecked``); ``None`` in older files."""
    warnings: list[str] | None = None
    """What a reader must know before trusting the answer (:attr:`thinkloop.Result.warnings`)."""
    error: str | None = None
    k: int | None = None
    pass_at_k: bool | None = None
    answers: list[str] | None = None
    trace: str | None = None
    settings: str | None = None
    """Fingerprint of the config's effective options (see ``Config.settings``); ``None`` in older files."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.config, self.id)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes, complete) for each non-empty line; the last one is incomplete when torn."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            yield number, raw, number < len(lines)


def read_records(path: str | Path) -> list[Record]:
    """All records in file order. A torn last line (no newline, unparsable) is ignored; any other bad line
    is an error naming the file and line."""
    path = Path(path)
    records: list[Record] = []
    for number, raw, complete in _lines(path):
        try:
            records.append(Record.model_validate_json(raw))
        except ValidationError as exc:
            if not complete:
                break  # torn by a crash mid-write; the problem will be run again
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "record"
            raise DatasetError(f"{path}:{number}: bad result record, field {field!r}: {first['msg']}") from exc
    return records


def latest(records: Iterable[Record]) -> dict[tuple[str, str], Record]:
    """The newest record per (config, problem id), in the order keys first appeared."""
    newest: dict[tuple[str, str], Record] = {}
    for record in records:
        newest[record.key] = record
    return newest


class ResultStore:
    """Appends records to a JSONL file, one whole line per write, flushed (and fsynced) at once."""

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        try:
            self._lock = WriterLock(self._file, self.path, what="results file")
        except BaseException:
            self._file.close()
            raise
        try:
            self._repair()
            self.records: dict[tuple[str, str], Record] = latest(read_records(self.path))
        except BaseException:
            self.close()
            raise

    def _repair(self) -> None:
        """End the file on a whole line: a last line that parses only lacks its newline and keeps it; a torn
        one is cut, so the next record starts on a line of its own."""
        if not self.path.exists():
            return
        with self.path.open("r+b") as file:
            data = file.read()
            if not data or data.endswith(b"\n"):
                return
            start = data.rfind(b"\n") + 1
            try:
                Record.model_validate_json(data[start:])
            except ValidationError:
                file.truncate(start)
            else:
                file.write(b"\n")

    def status(self, config: str, problem_id: str) -> str | None:
        record = self.records.get((config, problem_id))
        return record.status if record is not None else None

    def append(self, record: Record) -> None:
        """Write one record as a whole line and flush it; a write that fails (a full disk) raises ``OSError``
        and the record does not count as written."""
        line = record.model_dump_json(exclude_none=True).encode() + b"\n"
        self._file.write(line)  # buffered: writes all of it or raises
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self.records[record.key] = record

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._lock.release()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
