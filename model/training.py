"""Training q(z | x): a sleep-phase warm start on prior samples, then the ELBO.

The loop is generic: the model's objective (objective.py) returns its terms as a dict; the
loop steps the optimiser, logs, checkpoints and resumes. CPU or CUDA; under torchrun each
rank draws its own data and DistributedDataParallel averages the gradients.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from torch import nn
from tqdm import tqdm

from air3d.model.build import build_model
from air3d.model.checkpoint import load_checkpoint, save_checkpoint
from air3d.model.config import ModelConfig, check_keys
from air3d.model.objective import NVILBaseline, elbo_terms, sleep_loss
from air3d.model.predictor import Predictor
from air3d.renderer import SceneBatch, SceneRenderer, ShapeLibrary, World
from air3d.renderer import load_shape_library as _load_shapes
from air3d.renderer import load_world as _load_world
from air3d.renderer.prior import sample_scenes, shape_probabilities


@dataclass(frozen=True)
class TrainConfig:
    out: str = "runs/default"  # directory for checkpoint.pt, model.pt, metrics.csv, tb/
    seed: int = 0
    device: str = "auto"  # "auto": cuda when available, else cpu
    num_threads: int = 0  # CPU threads for torch (0: torch's default)
    world: str | None = None  # scene config path (None: the shipped assets/scene.yaml)
    pool_size: int = 20000  # prior samples rendered once and reused (per rank)
    pool_cache: str | None = "runs/cache"  # where rendered pools are kept (None: nowhere)
    batch_size: int = 64
    sleep_steps: int = 1000  # stage 1: fit q to (z, x) from prior + renderer
    elbo_steps: int = 0  # stage 2: maximise the ELBO through the soft renderer
    elbo_batch_size: int = 32  # soft rendering is the cost of a stage-2 step
    lr: float = 1e-3  # stage 1, cosine-decayed to lr_floor * lr
    lr_floor: float = 0.05
    elbo_lr: float = 1e-4  # stage 2, for q
    baseline_lr: float = 1e-3  # stage 2, for the NVIL baseline (separate, as in the paper)
    log_every: int = 50
    checkpoint_every: int = 500
    validate_size: int = 256  # held-out prior samples for the count accuracy logged in training
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        check_keys(cls, data, "train config")
        return cls(**data)


def load_train_config(path: str | Path | None, overrides: list[str]) -> TrainConfig:
    """YAML file (optional) plus `key=value` overrides (`model.hidden_dim=64` for nested)."""
    data: dict[str, Any] = {}
    if path is not None:
        with open(path) as file:
            data = yaml.safe_load(file) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key=value")
        target = data
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = yaml.safe_load(value)
    return TrainConfig.from_dict(data)


@dataclass
class ScenePool:
    """Prior samples rendered once: images (n, 3, S, S) uint8 and their latents."""

    images: torch.Tensor
    latents: SceneBatch

    @classmethod
    def cached(
        cls,
        n: int,
        seed: int,
        world: World,
        shapes: ShapeLibrary,
        renderer: SceneRenderer,
        cache_dir: str | None,
    ) -> ScenePool:
        """Like sample(), but kept in cache_dir keyed by everything that shapes the pool, so
        that resumed and repeated runs skip the rendering (minutes for 60k scenes on CPU)."""
        if cache_dir is None:
            return cls.sample(n, seed, world, shapes, renderer)
        key = json.dumps([n, seed, world.to_dict(), shapes.to_dict()], sort_keys=True)
        path = Path(cache_dir) / f"pool-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
        if path.exists():
            data = torch.load(path, weights_only=True)
            return cls(data["images"], SceneBatch(*data["latents"]))
        pool = cls.sample(n, seed, world, shapes, renderer)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"images": pool.images, "latents": list(batch_tensors(pool.latents))}, tmp)
        os.replace(tmp, path)
        return pool

    @classmethod
    def sample(
        cls, n: int, seed: int, world: World, shapes: ShapeLibrary, renderer: SceneRenderer
    ) -> ScenePool:
        scenes = sample_scenes(world, shapes, n, seed)
        chunks = []
        with torch.no_grad():
            for start in range(0, n, 256):
                rendered = renderer.render_scenes(scenes[start : start + 256], "crisp")
                chunks.append((rendered * 255).round().to(torch.uint8).cpu())
        images = torch.cat(chunks) if chunks else torch.zeros(0, 3, 1, 1, dtype=torch.uint8)
        return cls(images, SceneBatch.from_scenes(scenes, shapes, world.max_objects))

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, SceneBatch]:
        images = self.images[index].to(device, torch.float32) / 255.0
        latents = SceneBatch(*(t[index] for t in batch_tensors(self.latents)))
        return images, latents.to(device)


def batch_tensors(batch: SceneBatch) -> tuple[torch.Tensor, ...]:
    """A SceneBatch's fields in constructor order (for slicing and saving)."""
    return (batch.shape, batch.present, batch.xz, batch.yaw)


class Trainee(nn.Module):
    """q plus its NVIL baseline: one module, so that DDP sees every trained parameter."""

    def __init__(self, config: ModelConfig, world: World, shapes: ShapeLibrary):
        super().__init__()
        self.q = build_model(config, world, shapes)
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
            return sleep_loss(self.q(images, "mean"), targets, self.q.latents, ordered)
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
        self.world, self.shapes = _load_world(config.world), _load_shapes()
        self.model_config = ModelConfig.from_dict(config.model)
        if self.model_config.kind != "air" and config.elbo_steps:
            raise ValueError("elbo_steps needs model.kind=air: the baseline has no ELBO stage")
        torch.manual_seed(config.seed)
        self.trainee = Trainee(self.model_config, self.world, self.shapes).to(self.device)
        self.renderer = SceneRenderer(self.world, self.shapes, self.device)
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.trainee.q.parameters(), "lr": config.lr},
                {"params": self.trainee.baseline.parameters(), "lr": config.baseline_lr},
            ]
        )
        self.step = 0
        self.metrics: dict[str, float] = {}
        if resume:
            self._resume()
        self.module: nn.Module = self.trainee
        if self.world_size > 1:
            self.module = nn.parallel.DistributedDataParallel(
                self.trainee, find_unused_parameters=True
            )

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
        torch.set_rng_state(checkpoint["rng"].cpu())

    def _checkpoint(self, with_optimizer: bool = True) -> dict[str, Any]:
        checkpoint = {
            "model_config": self.model_config.to_dict(),
            "world": self.world.to_dict(),
            "shapes": self.shapes.to_dict(),
            "train_config": asdict(self.config),
            "step": self.step,
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
        pool = ScenePool.cached(
            c.pool_size,
            c.seed + 7919 * self.rank,
            self.world,
            self.shapes,
            self.renderer,
            c.pool_cache,
        )
        held_out = ScenePool.sample(
            c.validate_size, c.seed + 1_000_003, self.world, self.shapes, self.renderer
        )
        log = _MetricsLog(self.out, enabled=main)
        bar = tqdm(
            total=self.total_steps, initial=self.step, desc="train", disable=not main, unit="step"
        )
        while self.step < self.total_steps:
            stage = self._stage(self.step)
            size = c.batch_size if stage == "sleep" else c.elbo_batch_size
            images, targets = pool.batch(
                self._batch_index(self.step, len(pool.images), size), self.device
            )
            self._set_lr(self.step)
            self.module.train()
            terms = self.module(stage, images, targets, self.renderer, self.world)
            loss = (
                terms["loss"]
                if stage == "sleep"
                else terms["loss_reparam"] + terms["loss_reinforce"] + terms["loss_baseline"]
            )
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {self.step} ({stage})")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.trainee.parameters(), 10.0)
            self.optimizer.step()
            self.step += 1
            bar.update(1)
            if self.step % c.log_every == 0 or self.step == self.total_steps:
                self.metrics = {k: float(v.detach()) for k, v in terms.items()}
                self.metrics["count_accuracy"] = self.validate(held_out)
                log.write(self.step, stage, self.metrics)
                bar.set_postfix(stage=stage, loss=f"{loss.item():.3g}",
                                count_acc=f"{self.metrics['count_accuracy']:.3f}")  # fmt: skip
            if main and (self.step % c.checkpoint_every == 0 or self.step == self.total_steps):
                save_checkpoint(self.out / "checkpoint.pt", self._checkpoint())
            if main and self.step == c.sleep_steps and c.elbo_steps:
                # q after the warm start alone: what the report compares the ELBO stage to
                save_checkpoint(self.out / "sleep.pt", self._checkpoint(with_optimizer=False))
        bar.close()
        if main:
            save_checkpoint(self.out / "model.pt", self._checkpoint(with_optimizer=False))
        log.close()
        if self.world_size > 1:
            dist.barrier()
            dist.destroy_process_group()
        return self.metrics

    @torch.no_grad()
    def validate(self, held_out: ScenePool) -> float:
        """Count accuracy of q's answer on held-out prior samples, counted as the Predictor
        counts (presence > 0.5; AIR stops at its first absent step)."""
        index = torch.arange(len(held_out.images))
        images, targets = held_out.batch(index, self.device)
        predictor = Predictor(self.trainee.q, self.world, self.shapes, "in-training", "")
        count = torch.tensor([len(answer.objects) for answer in predictor.infer(images)])
        return float((count == targets.present.sum(1).cpu()).float().mean())


class _MetricsLog:
    """metrics.csv (one row per log step; appends on resume) and TensorBoard scalars."""

    def __init__(self, out: Path, enabled: bool):
        self.enabled, self.path = enabled, out / "metrics.csv"
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tb"))

    def write(self, step: int, stage: str, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        new = not self.path.exists()
        with open(self.path, "a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(["step", "stage", "name", "value"])
            for name, value in metrics.items():
                writer.writerow([step, stage, name, f"{value:.6g}"])
                self.writer.add_scalar(f"{stage}/{name}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def train(config: TrainConfig, resume: bool = False) -> dict[str, float]:
    return Trainer(config, resume).run()
