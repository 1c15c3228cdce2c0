"""Fresh prior scenes during a long run: blocks rendered while q trains, written over the
pool's oldest entries, so that a run of many steps sees many more distinct scenes than the
pool holds (issue 18: 12,000 scenes seen a hundred times each over-fit).

Block b holds `size` scenes drawn from a seed of (run seed, b) alone and is written at step
(b + 1) * every over the pool entries (b * size ... ) mod n, a ring: the pool at a given step
is a function of (seed, step) alone. A resumed run rebuilds it by rendering the blocks that
still live in the pool (at most n scenes, as long as the pool itself took), so that it trains
on exactly the batches the uninterrupted run would have.

Blocks are drawn on the CPU in worker processes (one while q trains, which hides most of
its cost; one per core when a resumed run rebuilds the pool), also when q trains on CUDA:
the pool is kept on the CPU either way, and a GPU draws these small look-chunked blocks no
faster than one core (an H200 drew about 20 scenes/s: a 12,000-scene pool took 8 minutes to
rebuild and each block paused training for 3.5 s, against about 25 scenes/s per core), so the
pool is also the same whichever device trains.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor

import torch

from air3d.model.augment import AugmentConfig
from air3d.model.scene_pool import ScenePool, batch_tensors
from air3d.renderer import SceneRenderer, ShapeLibrary, World


class PoolRefresh:
    def __init__(
        self,
        every: int,
        size: int,
        seed: int,
        world: World,
        shapes: ShapeLibrary,
        looks: AugmentConfig | None = None,
    ):
        if every < 1 or size < 1:
            raise ValueError(f"refresh_every and refresh_size must be >= 1, got {every}, {size}")
        self.every, self.size, self.seed = every, size, seed
        self.world, self.shapes, self.looks = world, shapes, looks
        self.executor: Executor | None = None
        self.pending: dict[int, Future[ScenePool]] = {}

    def block(self, index: int) -> ScenePool:
        """Block `index`'s scenes, rendered (a function of the run's seed and the index)."""
        return _draw_block(*self._block_args(index))

    def _block_args(self, index: int) -> tuple:
        seed = self.seed + 15_485_863 * (index + 1)
        return self.size, seed, self.world, self.shapes, self.looks

    def blocks_written(self, step: int) -> int:
        return step // self.every

    def restore(self, step: int, n: int, initial: Callable[[], ScenePool]) -> ScenePool:
        """The pool of n scenes as it is after `step` steps: `initial()` (the run's first
        draw) with the blocks written since; `initial` is not called where every one of its
        scenes has been written over. Starts drawing the next block."""
        written = self.blocks_written(step)
        first_live = max(0, written - math.ceil(n / self.size))
        if written * self.size < n:
            pool = initial()
        else:
            block = self.block(first_live)
            pool = ScenePool.zeros(n, like=block)
            self._write(pool, first_live, block)
            first_live += 1
        rebuilt = range(first_live, written)
        if len(rebuilt) > 1:
            with _workers(os.cpu_count() or 1) as workers:
                futures = [workers.submit(_draw_block, *self._block_args(i)) for i in rebuilt]
                for index, future in zip(rebuilt, futures, strict=True):
                    self._write(pool, index, future.result())
        else:
            for index in rebuilt:
                self._write(pool, index, self.block(index))
        self.prefetch(written)
        return pool

    def after_step(self, pool: ScenePool, step: int) -> None:
        """Called once `step` steps are done: at each `every`-th, writes the block due (drawn
        in the background since the last one) and starts drawing the next."""
        if step % self.every:
            return
        index = self.blocks_written(step) - 1
        future = self.pending.pop(index, None)
        fresh = future.result() if future is not None else self.block(index)
        self._write(pool, index, fresh)
        self.prefetch(index + 1)

    def prefetch(self, index: int) -> None:
        """Starts drawing block `index` in the background."""
        if index in self.pending:
            return
        if self.executor is None:
            self.executor = _workers(1)
        self.pending[index] = self.executor.submit(_draw_block, *self._block_args(index))

    def close(self) -> None:
        for future in self.pending.values():
            future.cancel()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        self.executor = None
        self.pending.clear()

    def _write(self, pool: ScenePool, index: int, fresh: ScenePool) -> None:
        n = len(pool.images)
        positions = (index * self.size + torch.arange(self.size)) % n
        # A block larger than the pool: its last scenes win, as written in order.
        positions, keep = positions[-n:], slice(max(0, self.size - n), None)
        pool.images[positions] = fresh.images[keep]
        for mine, theirs in zip(
            batch_tensors(pool.latents), batch_tensors(fresh.latents), strict=True
        ):
            mine[positions] = theirs[keep].to(mine.dtype)


def _workers(count: int) -> ProcessPoolExecutor:
    # spawn: a forked child of a process that has run torch's thread pools can deadlock
    return ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))


def _draw_block(
    size: int,
    seed: int,
    world: World,
    shapes: ShapeLibrary,
    looks: AugmentConfig | None,
) -> ScenePool:
    """`size` prior scenes from `seed`, rendered as a pool (ScenePool.sample's draw)."""
    if multiprocessing.parent_process() is not None:
        torch.set_num_threads(1)  # a worker: one core each
    renderer = SceneRenderer(world, shapes, torch.device("cpu"))
    return ScenePool.sample(size, seed, world, shapes, renderer, looks)
