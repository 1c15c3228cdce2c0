"""Scale-out under torchrun: which share of the work this process takes, and shard files.

torchrun (or `python -m torch.distributed.run`) starts WORLD_SIZE copies of a command and
tells each its RANK and LOCAL_RANK in the environment. Each rank takes every WORLD_SIZE-th
input starting at RANK (`inputs[rank::world_size]`, over the full sorted input list, so that
every input belongs to exactly one rank whatever has already been done) and writes its own
shard `OUT.rank{r}-of-{w}`. When all ranks are done (a gloo barrier), rank 0 merges the
shards into OUT. A run that stops before the merge leaves its shards: rerunning (with any
number of processes) or `air3d infer --merge --out OUT` folds them in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

# Ranks wait for the slowest one at the end; a big folder on a slow device takes long.
BARRIER_TIMEOUT = timedelta(hours=24)


@dataclass(frozen=True)
class Shard:
    """This process's place among the processes of one run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # index among the processes on this machine (picks the GPU)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def take(self, items: Sequence[T]) -> list[T]:
        """This rank's share: items[rank::world_size]."""
        return list(items[self.rank :: self.world_size])

    def device(self, device: str) -> torch.device:
        """Resolves "auto" (CUDA if available, else CPU); each rank gets its own GPU."""
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        resolved = torch.device(device)
        if resolved.type == "cuda" and resolved.index is None:
            resolved = torch.device("cuda", self.local_rank % max(torch.cuda.device_count(), 1))
        return resolved


def current_shard() -> Shard:
    """Reads RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them (a single process if unset)."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as error:
        raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers: {error}") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid RANK={rank} for WORLD_SIZE={world_size}")
    return Shard(rank, world_size, local_rank)


@contextmanager
def process_group(shard: Shard) -> Iterator[None]:
    """Joins the run's gloo process group (only when distributed) for the final barrier."""
    if not shard.distributed or dist.is_initialized():
        yield
        return
    dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier(shard: Shard) -> None:
    """Waits until every rank gets here (nothing to wait for in a single process)."""
    if shard.distributed:
        dist.barrier()


def shard_path(out: str | Path, shard: Shard) -> Path:
    """Where rank r of w writes: OUT.rank{r}-of-{w}."""
    out = Path(out)
    return out.with_name(f"{out.name}.rank{shard.rank}-of-{shard.world_size}")


def existing_shards(out: str | Path) -> list[Path]:
    """Shards of OUT left by runs of any size, ordered by (world size, rank)."""
    out = Path(out)
    pattern = re.compile(re.escape(out.name) + r"\.rank(\d+)-of-(\d+)")
    found = []
    if out.parent.is_dir():
        for path in out.parent.iterdir():
            match = pattern.fullmatch(path.name)
            if match and path.is_file():
                found.append(((int(match[2]), int(match[1])), path))
    return [path for _, path in sorted(found)]
