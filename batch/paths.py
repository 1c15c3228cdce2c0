"""Output file names made from source paths, confined to the output folder.

A source path can be anything a JSONL line holds: relative, absolute, full of '..', odd
characters, or the same file name in many folders. Outputs are therefore named after the
source's file name only, sanitised, plus a short hash of the whole source string, e.g.
`data/images/000042.png` -> `000042-3fa9c01b2e4d`: readable, stable across runs and ranks
(it depends on the source alone), and distinct for distinct sources.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_STEM = 80  # characters of the file name kept before the hash
HASH_CHARS = 12  # 48 bits: a clash is improbable, and assign_stems resolves it anyway


def output_stem(source: str) -> str:
    """Takes a source path to a file-name stem made of [A-Za-z0-9_-] only (no dots, no
    separators, so it can never name a parent folder or a hidden file)."""
    name = re.split(r"[\\/]", source)[-1]
    base = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    safe = _UNSAFE.sub("_", base).strip("_")[:MAX_STEM] or "image"
    digest = hashlib.sha1(source.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    return f"{safe}-{digest}"


def assign_stems(sources: Sequence[str]) -> list[str]:
    """One stem per source; the same source always gets the same stem, and in the (48-bit
    hash) event that two sources share one, the later in order gets "-2", "-3", ..."""
    owner: dict[str, str] = {}  # casefolded stem -> its source (case-insensitive file systems)
    stems = []
    for source in sources:
        stem = candidate = output_stem(source)
        n = 1
        while owner.setdefault(candidate.casefold(), source) != source:
            n += 1
            candidate = f"{stem}-{n}"
        stems.append(candidate)
    return stems


def confined(directory: Path, relative: str) -> Path:
    """directory / relative, refusing anything that would resolve outside `directory`
    (a second line of defence; also catches symbolic links planted inside it)."""
    root = directory.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ValueError(f"output path {relative!r} would leave {directory}")
    return path
