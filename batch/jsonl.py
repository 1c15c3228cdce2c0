"""Append-only JSON Lines files that are never left half-written.

A writer appends whole lines, one write per batch, then flushes and fsyncs, so that a crash
loses at most the batch in flight. What a crash can leave is a trailing line without its
newline: readers ignore it unless it is a complete JSON value, and a writer opening the file
again cuts it off (or, if it is complete, ends it with the missing newline) before appending.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JsonlLine:
    """One line of a JSONL file: its 1-based number, and its value or why it has none."""

    number: int
    value: Any = None  # the decoded JSON value; None when `error` is set
    error: str | None = None  # "invalid JSON: ..." for a line that does not decode


def read_jsonl(path: str | Path) -> Iterator[JsonlLine]:
    """Yields every line of `path` (blank lines skipped), ignoring a trailing partial line."""
    with open(path, "rb") as file:
        data = file.read()
    for number, (raw, complete) in enumerate(_split(data), start=1):
        if not raw.strip():
            continue
        try:
            yield JsonlLine(number, json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            if complete:  # a partial last line is a write cut short: not an error
                yield JsonlLine(number, error=f"invalid JSON: {error}")


def _split(data: bytes) -> Iterator[tuple[bytes, bool]]:
    """Yields (line, ends with a newline) for every line of data."""
    lines = data.split(b"\n")
    for raw in lines[:-1]:
        yield raw, True
    if lines[-1]:
        yield lines[-1], False


class JsonlWriter:
    """Appends batches of JSON records to a file, each batch durable before the next starts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair(self.path)
        self._file = open(self.path, "ab")  # noqa: SIM115 (closed by close / __exit__)

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """Appends one line per record with a single write, then flushes and fsyncs."""
        data = b"".join(
            json.dumps(record, ensure_ascii=False).encode() + b"\n" for record in records
        )
        if not data:
            return
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def repair(path: Path) -> None:
    """Makes `path` end at a line boundary: a trailing partial line is cut off, or, if it
    happens to be complete JSON (a write cut just before its newline), given its newline."""
    if not path.exists():
        return
    with open(path, "rb+") as file:
        data = file.read()
        if not data or data.endswith(b"\n"):
            return
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:])
        except (json.JSONDecodeError, UnicodeDecodeError):
            file.truncate(start)
        else:
            file.write(b"\n")
        file.flush()
        os.fsync(file.fileno())


def write_jsonl_atomic(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Writes a whole JSONL file at once: a temporary file, fsynced, then renamed over `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
