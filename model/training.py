"""Training q(z | x): a sleep-phase warm start on prior samples, then the ELBO.

Settings are TrainConfig (train_config.py); the sleep stage's data is a ScenePool
(scene_pool.py), which fresh scenes rewrite during a long run (pool_refresh.py); metrics go
through MetricsLog (metrics_log.py).

The loop is generic: the model's objective (objective.py) returns its terms as a dict; the
loop steps the optimiser, logs, checkpoints and resumes. The sleep stage runs AIR for
`extra_steps` more steps than the world's max_objects (trained "absent": learning to stop)
and varies the images' look (augment.py); `init_from` starts from a trained q (fine-tuning).
CPU or CUDA; under torchrun each rank draws its own data and DistributedDataParallel
averages the gradients.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from air3d.model.augment import AugmentConfig, augment
from air3d.model.build import build_model
from air3d.model.checkpoint import load_checkpoint, save_checkpoint
from air3d.model.config import ModelConfig
from air3d.model.metrics_log import MetricsLog
from air3d.model.objective import NVILBaseline, elbo_terms, sleep_loss, stage_loss
from air3d.model.pool_refresh import PoolRefresh
from air3d.model.predictor import Predictor
from air3d.model.scene_pool import ScenePool
from air3d.model.train_config import TrainConfig
from air3d.renderer import SceneBatch, SceneRenderer, ShapeLibrary, World, open_world
from air3d.renderer.prior import shape_probabilities


class Trainee(nn.Module):
    """q plus its NVIL baseline: one module, so that DDP sees every trained parameter."""

    def __init__(
        self, config: ModelConfig, world: World, shapes: ShapeLibrary, extra_steps: int = 0
    ):
        super().__init__()
        self.q = build_model(config, world, shapes)
        # Steps the sleep stage runs: AIR past the prior's maximum, the slot baseline as built.
        self.sleep_steps = world.max_objects + extra_steps if config.kind == "air" else None
        self.baseline = NVILBaseline(config.feature_dim, config.hidden_dim)
        probs = shape_probabilities(world, shapes)
        self.register_buffer("shape_log_prior", torch.tensor(probs).clamp(min=1e-12).log())

    def forward(
        self,
        stage: str,
        images: torch.Tensor,
        targets: SceneBatch | None,
        renderer: SceneRenderer,
        world: World,
    ) -> dict[str, torch.Tensor]:
        """The stage's objective terms: "sleep" needs the true latents, "elbo" does not."""
        if stage == "sleep":
            ordered = self.q.config.kind == "air"
            out = self.q(images, "mean", self.sleep_steps)
            return sleep_loss(out, targets, self.q.latents, ordered)
        # The ELBO stage keeps max_objects steps: its count prior has no mass beyond them.
        out = self.q(images, "sample")
        return elbo_terms(
            out, images, renderer, world, self.q.latents, self.baseline, self.shape_log_prior
        )


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _distributed() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class Trainer:
    def __init__(self, config: TrainConfig, resume: bool = False):
        self.config = config
        self.rank, self.world_size = _distributed()
        self.device = _device(config.device)
        if self.world_size > 1:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend)
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.out = Path(config.out)
        self.world, self.shapes = open_world(config.world)
        if config.extra_steps < 0:
            raise ValueError(f"extra_steps must be >= 0, got {config.extra_steps}")
        self.looks = AugmentConfig.from_dict(config.augment)
        initial = self._initial_checkpoint()
        model_overrides = {**(initial["model_config"] if initial else {}), **config.model}
        self.model_config = ModelConfig.from_dict(model_overrides)
        if self.model_config.kind != "air" and config.elbo_steps:
            raise ValueError("elbo_steps needs model.kind=air: the baseline has no ELBO stage")
        torch.manual_seed(config.seed)
        self.trainee = Trainee(self.model_config, self.world, self.shapes, config.extra_steps).to(
            self.device
        )
        if initial is not None:
            self._load_initial(initial)
        self.renderer = SceneRenderer(self.world, self.shapes, self.device)
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.trainee.q.parameters(), "lr": config.lr},
                {"params": self.trainee.baseline.parameters(), "lr": config.baseline_lr},
            ]
        )
        self.step = 0
        self.hours = 0.0  # wall-clock hours of the run's steps so far, resumes added up
        self.metrics: dict[str, float] = {}
        if resume:
            self._resume()
        self.module: nn.Module = self.trainee
        if self.world_size > 1:
            self.module = nn.parallel.DistributedDataParallel(
                self.trainee, find_unused_parameters=True
            )

    def _initial_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint named by init_from, checked to be of this run's world."""
        if self.config.init_from is None:
            return None
        checkpoint = load_checkpoint(self.config.init_from, "cpu")
        # Compared as read back (World.from_dict): older checkpoints lack keys that today's
        # configs hold with their defaults (e.g. `tone`).
        # What only Blender reads (lamps, physically based surfaces) does not count.
        theirs = replace(World.from_dict(checkpoint["world"]), name=self.world.name)
        mine = self.world.model_facing().to_dict()
        if theirs.model_facing().to_dict() != mine:  # the folder's name may differ
            raise ValueError(
                f"init_from {self.config.init_from} was trained in another world than this "
                "run's (compare its scene config with the run's `world`)"
            )
        return checkpoint

    def _load_initial(self, checkpoint: dict[str, Any]) -> None:
        try:
            self.trainee.q.load_state_dict(checkpoint["model"])
        except RuntimeError as error:
            raise ValueError(
                f"init_from {self.config.init_from} does not fit the model config "
                f"{self.model_config.to_dict()}: {error}"
            ) from None

    @property
    def total_steps(self) -> int:
        return self.config.sleep_steps + self.config.elbo_steps

    def _resume(self) -> None:
        path = self.out / "checkpoint.pt"
        if not path.exists():
            return
        checkpoint = load_checkpoint(path, self.device)
        self.trainee.q.load_state_dict(checkpoint["model"])
        self.trainee.baseline.load_state_dict(checkpoint["baseline"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.step, self.metrics = checkpoint["step"], checkpoint["metrics"]
        self.hours = checkpoint.get("hours", 0.0)  # absent from checkpoints made before
        torch.set_rng_state(checkpoint["rng"].cpu())

    def _checkpoint(self, with_optimizer: bool = True) -> dict[str, Any]:
        checkpoint = {
            "model_config": self.model_config.to_dict(),
            "world": self.world.to_dict(),
            "shapes": self.shapes.to_dict(),
            "train_config": asdict(self.config),
            "step": self.step,
            "hours": self.hours,
            "stage": self._stage(max(self.step - 1, 0)),
            "metrics": self.metrics,
            "model": self.trainee.q.state_dict(),
        }
        if with_optimizer:
            checkpoint["baseline"] = self.trainee.baseline.state_dict()
            checkpoint["optimizer"] = self.optimizer.state_dict()
            checkpoint["rng"] = torch.get_rng_state()
        return checkpoint

    def _stage(self, step: int) -> str:
        return "sleep" if step < self.config.sleep_steps else "elbo"

    def _set_lr(self, step: int) -> None:
        c = self.config
        if self._stage(step) == "sleep":
            progress = step / max(c.sleep_steps, 1)
            scale = c.lr_floor + (1 - c.lr_floor) * 0.5 * (1 + math.cos(math.pi * progress))
            self.optimizer.param_groups[0]["lr"] = c.lr * scale
        else:
            self.optimizer.param_groups[0]["lr"] = c.elbo_lr

    def _batch_index(self, step: int, pool_size: int, batch_size: int) -> torch.Tensor:
        """Which pool entries step `step` trains on: a function of (seed, step) alone, so a
        resumed run sees exactly the batches the uninterrupted run would have."""
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step)
        return torch.randint(pool_size, (batch_size,), generator=generator)

    def run(self) -> dict[str, float]:
        c, main = self.config, self.rank == 0
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
        seed = c.seed + 7919 * self.rank

        def first_pool() -> ScenePool:
            return ScenePool.cached(
                c.pool_size, seed, self.world, self.shapes, self.renderer, c.pool_cache, self.looks
            )

        refresh = None
        if c.refresh_every:
            refresh = PoolRefresh(
                c.refresh_every, c.refresh_size, seed, self.world, self.shapes, self.looks
            )
            pool = refresh.restore(self.step, c.pool_size, first_pool)
        else:
            pool = first_pool()
        held_out = ScenePool.sample(
            c.validate_size, c.seed + 1_000_003, self.world, self.shapes, self.renderer
        )
        log = MetricsLog(self.out, enabled=main)
        bar = tqdm(
            total=self.total_steps, initial=self.step, desc="train", disable=not main, unit="step"
        )
        clock, hours_before = time.monotonic(), self.hours
        try:  # the refresh's worker process must not outlive an interrupted run
            while self.step < self.total_steps:
                stage = self._stage(self.step)
                size = c.batch_size if stage == "sleep" else c.elbo_batch_size
                images, targets = pool.batch(
                    self._batch_index(self.step, len(pool.images), size), self.device
                )
                if stage == "sleep":
                    images = self._vary_looks(images)
                self._set_lr(self.step)
                self.module.train()
                terms = self.module(stage, images, targets, self.renderer, self.world)
                loss = stage_loss(stage, terms)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss.item()} at step {self.step} ({stage})")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.trainee.parameters(), 10.0)
                self.optimizer.step()
                self.step += 1
                bar.update(1)
                self.hours = hours_before + (time.monotonic() - clock) / 3600
                if refresh is not None:
                    refresh.after_step(pool, self.step)
                if self.step % c.log_every == 0 or self.step == self.total_steps:
                    self.metrics = {k: float(v.detach()) for k, v in terms.items()}
                    self.metrics["count_accuracy"] = self.validate(held_out)
                    if self.trainee.sleep_steps and c.extra_steps:
                        steps = self.trainee.sleep_steps  # are the extra steps off?
                        self.metrics["count_accuracy_extra_steps"] = self.validate(held_out, steps)
                    self.metrics["hours"] = self.hours
                    log.write(self.step, stage, self.metrics)
                    bar.set_postfix(stage=stage, loss=f"{loss.item():.3g}",
                                    count_acc=f"{self.metrics['count_accuracy']:.3f}")  # fmt: skip
                if main and (self.step % c.checkpoint_every == 0 or self.step == self.total_steps):
                    save_checkpoint(self.out / "checkpoint.pt", self._checkpoint())
                if main and self.step == c.sleep_steps and c.elbo_steps:
                    # q after the warm start alone: what the report compares the ELBO stage to
                    save_checkpoint(self.out / "sleep.pt", self._checkpoint(with_optimizer=False))
        finally:
            if refresh is not None:
                refresh.close()
        bar.close()
        if main:
            save_checkpoint(self.out / "model.pt", self._checkpoint(with_optimizer=False))
        log.close()
        if self.world_size > 1:
            dist.barrier()
            dist.destroy_process_group()
        return self.metrics

    def _vary_looks(self, images: torch.Tensor) -> torch.Tensor:
        """The sleep batch under random looks; the draw is a function of (seed, step) alone
        so that a resumed run sees the looks the uninterrupted run would have."""
        if self.looks.probability == 0:
            return images
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.step + 7)
        return augment(images.cpu(), self.looks, generator).to(self.device)

    @torch.no_grad()
    def validate(self, held_out: ScenePool, max_objects: int | None = None) -> float:
        """Count accuracy of q's answer on held-out prior samples, counted as the Predictor
        counts (presence > 0.5; AIR stops at its first absent step), with max_objects steps
        (None: the world's)."""
        index = torch.arange(len(held_out.images))
        images, targets = held_out.batch(index, self.device)
        predictor = Predictor(
            self.trainee.q, self.world, self.shapes, "in-training", "", max_objects
        )
        count = torch.tensor([len(answer.objects) for answer in predictor.infer(images)])
        return float((count == targets.present.sum(1).cpu()).float().mean())


def train(config: TrainConfig, resume: bool = False) -> dict[str, float]:
    return Trainer(config, resume).run()
