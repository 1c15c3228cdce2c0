"""`air3d adapt`: learn the renderer's appearance θ with q from unlabeled images (the ELBO).

AIR learns the generative model's parameters θ together with q's φ by maximising the ELBO
(Eslami et al. 2016, section 2.2). Here θ is the renderer's look (renderer/appearance.py:
light, ambient, object, ground and background colours, tone curve); the geometry (camera,
meshes, workspace, prior) stays the world's. Given images of our world drawn by another
renderer or camera, adaptation runs a schedule of stages, each a number of steps:

- "theta": θ alone, q fixed. The ELBO's gradient in θ is that of E_q[log p(x | z, θ)]: q's
  sampled answers are rendered through the soft renderer and θ follows the pixel error.
  Cheap and stable: a dozen numbers, fitted mostly by the ground, sky and objects q finds.
- "sleep": q alone on prior samples rendered with the current θ (the sleep phase of
  wake-sleep, as training's first stage): q learns the new look from scenes it knows.
- "joint": θ and q together by the ELBO on the images (training's ELBO stage: reparameterised
  continuous latents, REINFORCE + NVIL for presence and shape): q meets what θ cannot draw
  (shadows, anti-aliasing) on the images themselves.

Default schedule: theta, sleep, theta, sleep, joint (q's better answers after a sleep stage
refine θ, which the next sleep stage uses). No labels anywhere: each stage is scored on
held-out images by the fit of q's answer (mean log p(x | z, θ) per pixel), and the adapted
checkpoint keeps the stage end that fits best.

A run is resumable: `progress.pt` in the work directory holds θ, q, the optimisers and the
position in the schedule; `--minutes` caps the wall time (adaptation stops where it is and
writes what it has).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from air3d.images import Canvas, CanvasLike, read_image
from air3d.model.checkpoint import load_checkpoint, save_checkpoint
from air3d.model.config import ModelConfig, check_keys
from air3d.model.metrics_log import MetricsLog
from air3d.model.objective import elbo_terms, sleep_loss, stage_loss
from air3d.model.scene_pool import ScenePool
from air3d.model.training import Trainee
from air3d.renderer import SceneBatch, SceneRenderer, ShapeLibrary, World
from air3d.renderer.appearance import GROUPS
from air3d.renderer.likelihood import gaussian_log_likelihood

STAGES = ("theta", "sleep", "joint")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class AdaptConfig:
    # (stage, steps) in order; stages: theta (θ, q fixed), sleep (q on θ's renders), joint
    schedule: tuple[tuple[str, int], ...] = (
        ("theta", 300), ("sleep", 2000), ("theta", 200), ("sleep", 2000), ("joint", 300),
    )  # fmt: skip
    batch_size: int = 16  # images per theta / joint step (soft rendering is their cost)
    sleep_batch_size: int = 64  # prior samples per sleep step
    pool_size: int = 4096  # prior samples rendered with θ at the start of each sleep stage
    theta_lr: float = 0.03  # Adam on θ's unconstrained values (logits, logs)
    sleep_lr: float = 3e-4  # q in sleep stages (fine-tuning: below training's 1e-3)
    joint_lr: float = 3e-5  # q in the joint stage (training's ELBO stage used 1e-4)
    baseline_lr: float = 1e-3  # the NVIL baseline (joint stage)
    learn: tuple[str, ...] = tuple(GROUPS)  # which parts of θ are learned
    held_out: int = 64  # images kept aside to score stage ends (no labels: the fit of q)
    minutes: float | None = None  # wall-time cap for the whole run
    num_threads: int = 1  # CPU threads for torch
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 50  # progress.pt, for resuming

    def __post_init__(self) -> None:
        for stage, steps in self.schedule:
            if stage not in STAGES:
                raise ValueError(f"unknown adapt stage {stage!r}; known: {', '.join(STAGES)}")
            if steps < 0:
                raise ValueError(f"adapt stage {stage}: steps must be >= 0, got {steps}")
        for name in ("batch_size", "sleep_batch_size", "pool_size", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")
        unknown = sorted(set(self.learn) - set(GROUPS))
        if unknown:
            raise ValueError(f"unknown appearance groups {unknown}; known: {', '.join(GROUPS)}")

    @property
    def total_steps(self) -> int:
        return sum(steps for _, steps in self.schedule)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdaptConfig:
        check_keys(cls, data, "adapt config")
        data = dict(data)
        if "schedule" in data:
            data["schedule"] = tuple((str(s), int(n)) for s, n in data["schedule"])
        if "learn" in data:
            data["learn"] = tuple(data["learn"])
        return cls(**data)


def parse_schedule(text: str) -> tuple[tuple[str, int], ...]:
    """'theta:100,sleep:1000,joint:100' -> (('theta', 100), ('sleep', 1000), ('joint', 100))."""
    schedule = []
    for item in text.split(","):
        stage, sep, steps = item.strip().partition(":")
        if not sep or not steps.strip().isdigit():
            raise ValueError(f"schedule item {item!r} must look like stage:steps, e.g. theta:100")
        schedule.append((stage.strip(), int(steps)))
    return tuple(schedule)


def read_images(
    directory: str | Path, canvas: CanvasLike, limit: int | None = None
) -> torch.Tensor:
    """Every PNG and JPEG under `directory` (sorted, recursively), on the model's canvas
    (a world's `Canvas.of(world)`, or a square size) as (n, 3, S, S) in [0, 1].

    ValueError if the folder is missing or holds no images; ImageError (a ValueError)
    naming the file if one of them is not a usable image."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a folder of images")
    paths = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{directory}: no PNG or JPEG images found (searched recursively)")
    paths = paths[:limit] if limit is not None else paths
    canvas = Canvas.of(canvas)
    return torch.stack([read_image(path, canvas) for path in paths])


class Adapter:
    """One adaptation run: a checkpoint, images, a config -> an adapted checkpoint."""

    def __init__(
        self,
        checkpoint: str | Path,
        images: torch.Tensor,
        out: str | Path,
        config: AdaptConfig,
        work: str | Path | None = None,
        resume: bool = False,
    ):
        self.config, self.source = config, str(checkpoint)
        self.out = Path(out)
        self.work = Path(work) if work is not None else self.out.with_suffix(".adapt")
        torch.set_num_threads(config.num_threads)
        torch.manual_seed(config.seed)
        loaded = load_checkpoint(checkpoint, "cpu")
        self.world = World.from_dict(loaded["world"])
        self.shapes = ShapeLibrary.from_dict(loaded["shapes"])
        self.model_config = ModelConfig.from_dict(loaded["model_config"])
        if self.model_config.kind != "air":
            raise ValueError(f"adapt needs an AIR checkpoint; {checkpoint} holds a "
                             f"{self.model_config.kind!r} model")  # fmt: skip
        self.trainee = Trainee(self.model_config, self.world, self.shapes)
        self.trainee.q.load_state_dict(loaded["model"])
        self.q = self.trainee.q
        self.renderer = SceneRenderer(self.world, self.shapes)
        self.look = self.renderer.appearance
        self.theta_optimizer = torch.optim.Adam(self.look.learn(config.learn), config.theta_lr)
        self.q_optimizer = torch.optim.Adam(
            [
                {"params": self.q.parameters(), "lr": config.sleep_lr},
                {"params": self.trainee.baseline.parameters(), "lr": config.baseline_lr},
            ]
        )
        size = self.world.image_size
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(f"images must be (n, 3, {size}, {size}); got {tuple(images.shape)}")
        held = min(config.held_out, len(images) // 4)
        if len(images) - held < 1:
            raise ValueError("adapt needs at least one image")
        self.train_images, self.held_images = images[held:], images[:held]
        self.step, self.elapsed = 0, 0.0
        self.pool: ScenePool | None = None
        self.history: list[dict[str, Any]] = []  # one entry per stage end: its held-out fit
        self.best: dict[str, Any] | None = None  # θ and q of the best-fitting stage end
        if resume:
            self._resume()

    # ---- the schedule

    def stage_at(self, step: int) -> tuple[int, str]:
        """(index in the schedule, stage name) of global step `step`."""
        end = 0
        for index, (stage, steps) in enumerate(self.config.schedule):
            end += steps
            if step < end:
                return index, stage
        return len(self.config.schedule) - 1, self.config.schedule[-1][0]

    def run(self, progress: bool = True) -> dict[str, Any]:
        """Runs the schedule (from where a resumed run was), writes the adapted checkpoint."""
        c = self.config
        self.work.mkdir(parents=True, exist_ok=True)
        log = MetricsLog(self.work, enabled=True)
        if not self.history:
            self._score("start", -1)
        bar = tqdm(total=c.total_steps, initial=self.step, desc="adapt", unit="step",
                   disable=not progress)  # fmt: skip
        started, stopped = time.monotonic() - self.elapsed, False
        while self.step < c.total_steps:
            index, stage = self.stage_at(self.step)
            terms = self._one_step(stage)
            self.step += 1
            self.elapsed = time.monotonic() - started
            bar.update(1)
            if self.step % c.log_every == 0:
                metrics = {k: float(v.detach()) for k, v in terms.items()}
                log.write(self.step, stage, metrics)
                bar.set_postfix(stage=stage, **{k: f"{v:.3g}" for k, v in metrics.items()
                                                if k in ("log_likelihood", "loss")})  # fmt: skip
            stage_over = self.stage_at(self.step)[0] != index or self.step == c.total_steps
            out_of_time = c.minutes is not None and self.elapsed > 60 * c.minutes
            if stage_over or out_of_time:
                self._score(stage, index)
                log.write(self.step, stage, {"held_out_fit": self.history[-1]["fit"]})
                # each stage end as an adapted checkpoint: what each stage contributes
                fit = self.history[-1]["fit"]
                snapshot = self._adapted(self.q.state_dict(), self.look.state_dict(), fit, {})
                save_checkpoint(self.work / f"stage{index}-{stage}.pt", snapshot)
            if out_of_time:
                stopped = True
                break
            if self.step % c.checkpoint_every == 0:
                save_checkpoint(self.work / "progress.pt", self._progress())
        bar.close()
        log.close()
        save_checkpoint(self.work / "progress.pt", self._progress())
        summary = self._write(stopped)
        return summary

    def _one_step(self, stage: str) -> dict[str, torch.Tensor]:
        c = self.config
        generator = torch.Generator().manual_seed(c.seed * 1_000_003 + self.step)
        if stage == "sleep":
            if self.pool is None:
                self.pool = self._render_pool()
            index = torch.randint(len(self.pool.images), (c.sleep_batch_size,), generator=generator)
            images, targets = self.pool.batch(index, torch.device("cpu"))
            self.q.train()
            terms = sleep_loss(self.q(images, "mean"), targets, self.q.latents)
            self._set_q_lr(c.sleep_lr)
            self.q_optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            nn.utils.clip_grad_norm_(self.trainee.parameters(), 10.0)
            self.q_optimizer.step()
            return terms
        self.pool = None  # θ moves: the next sleep stage renders a new pool
        index = torch.randint(len(self.train_images), (c.batch_size,), generator=generator)
        images = self.train_images[index]
        if stage == "theta":
            self.trainee.eval()
            with torch.no_grad():  # q fixed: its answers are data for θ
                out = self.q(images, "sample")
            terms = self._elbo(out, images)
            loss = terms["loss_reparam"]
        else:
            self.trainee.train()
            terms = self._elbo(self.q(images, "sample"), images)
            loss = stage_loss("elbo", terms)
            self._set_q_lr(c.joint_lr)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"adapt: loss is {loss.item()} at step {self.step} ({stage})")
        self.theta_optimizer.zero_grad(set_to_none=True)
        self.q_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.theta_optimizer.step()
        if stage == "joint":
            nn.utils.clip_grad_norm_(self.trainee.parameters(), 10.0)
            self.q_optimizer.step()
        return terms

    def _elbo(self, out, images: torch.Tensor) -> dict[str, torch.Tensor]:
        t = self.trainee
        return elbo_terms(out, images, self.renderer, self.world, self.q.latents, t.baseline,
                          t.shape_log_prior)  # fmt: skip

    def _set_q_lr(self, lr: float) -> None:
        self.q_optimizer.param_groups[0]["lr"] = lr

    def _render_pool(self) -> ScenePool:
        """Prior samples drawn with the current θ (a new seed per sleep stage)."""
        index = self.stage_at(self.step)[0]
        seed = self.config.seed * 7919 + 104_729 * (index + 1)
        return ScenePool.sample(self.config.pool_size, seed, self.world, self.shapes,
                                self.renderer)  # fmt: skip

    # ---- scoring and output

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> float:
        """Mean log p(x | z, θ) per pixel of q's answer (presence > 0.5, means), rendered
        soft: how well θ and q explain images, without labels."""
        self.q.eval()
        total = 0.0
        for start in range(0, len(images), 64):
            chunk = images[start : start + 64]
            out = self.q(chunk, "mean")
            present = (torch.sigmoid(out.stack("pres_logit")) > 0.5).cumprod(1).bool()
            xz = self.q.latents.squash(out.stack("xz_loc"))
            eye = None if out.camera is None else out.camera.mean_eye  # q's camera
            scene = SceneBatch(out.stack("shape"), present, xz, out.stack("yaw"), eye)
            rendered = self.renderer(scene, "soft")
            log_lik = gaussian_log_likelihood(chunk, rendered, self.world.pixel_sigma)
            total += float(log_lik.sum())
        return total / (len(images) * images[0].numel())

    def _score(self, stage: str, index: int) -> None:
        images = self.held_images if len(self.held_images) else self.train_images[:64]
        fit = self.fit(images)
        world, _ = self.look.to_config(self.world, self.shapes)
        entry = {"stage": stage, "index": index, "step": self.step, "fit": fit,
                 "minutes": round(self.elapsed / 60, 2), "light": asdict(world.light),
                 "tone": asdict(world.tone)}  # fmt: skip
        self.history.append(entry)
        if self.best is None or fit >= self.best["fit"]:
            self.best = {"fit": fit, "entry": entry, "q": copy.deepcopy(self.q.state_dict()),
                         "theta": copy.deepcopy(self.look.state_dict())}  # fmt: skip

    def _write(self, stopped: bool) -> dict[str, Any]:
        """The adapted checkpoint: the best-fitting stage end's q, its θ in the world config."""
        assert self.best is not None
        summary = {
            "source": self.source,
            "images": len(self.train_images) + len(self.held_images),
            "held_out": len(self.held_images),
            "steps": self.step,
            "minutes": round(self.elapsed / 60, 2),
            "stopped_by_time": stopped,
            "kept": self.best["entry"],
            "history": self.history,
            "config": {**asdict(self.config), "schedule": [list(s) for s in self.config.schedule]},
        }
        self.look.load_state_dict(self.best["theta"])
        best = self.best
        save_checkpoint(self.out, self._adapted(best["q"], best["theta"], best["fit"], summary))
        return summary

    def _adapted(self, q: dict, theta: dict, fit: float, summary: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint of q and θ (θ written into the world config and shape library)."""
        current = copy.deepcopy(self.look.state_dict())
        self.look.load_state_dict(theta)
        world, shapes = self.look.to_config(self.world, self.shapes)
        self.look.load_state_dict(current)
        return {
            "model_config": self.model_config.to_dict(),
            "world": world.to_dict(),
            "shapes": shapes.to_dict(),
            "step": self.step,
            "stage": "adapt",
            "metrics": {"held_out_fit": fit},
            "adapt": summary,
            "model": q,
        }

    def _progress(self) -> dict[str, Any]:
        return {
            "model_config": self.model_config.to_dict(),
            "world": self.world.to_dict(),
            "shapes": self.shapes.to_dict(),
            "model": self.q.state_dict(),
            "adapt_config": {
                **asdict(self.config),
                "schedule": [list(s) for s in self.config.schedule],
            },  # fmt: skip
            "step": self.step,
            "elapsed": self.elapsed,
            "theta": self.look.state_dict(),
            "baseline": self.trainee.baseline.state_dict(),
            "theta_optimizer": self.theta_optimizer.state_dict(),
            "q_optimizer": self.q_optimizer.state_dict(),
            "history": self.history,
            "best": self.best,
        }

    def _resume(self) -> None:
        path = self.work / "progress.pt"
        if not path.exists():
            return
        progress = load_checkpoint(path, "cpu")
        self.q.load_state_dict(progress["model"])
        self.look.load_state_dict(progress["theta"])
        self.trainee.baseline.load_state_dict(progress["baseline"])
        self.theta_optimizer.load_state_dict(progress["theta_optimizer"])
        self.q_optimizer.load_state_dict(progress["q_optimizer"])
        self.step, self.elapsed = progress["step"], progress["elapsed"]
        self.history, self.best = progress["history"], progress["best"]
