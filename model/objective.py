"""The model owns its objective: each function returns its terms as a dict of tensors.

- `sleep_loss`: fit q to (z, x) pairs drawn from the prior and the renderer (the sleep
  phase of wake-sleep), used as a warm start; also trains the supervised baseline.
- `elbo_terms`: the ELBO of Eslami et al. with the renderer's pixel likelihood; gradients
  reach the continuous latents through the soft renderer (reparameterisation) and the
  discrete ones by score-function estimates with NVIL variance reduction (Mnih & Gregor
  2014): a learned input-dependent baseline, a centred and scaled learning signal, and per
  step credit for only the terms each choice affects.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.distributions import Bernoulli, Categorical, Normal

from air3d.model.air import AIROutput
from air3d.model.latents import LatentSpace, wrap_angle
from air3d.model.networks import mlp
from air3d.renderer import SceneBatch, World, gaussian_log_likelihood

RenderFn = Callable[[SceneBatch, str], torch.Tensor]


# ---------------------------------------------------------------- sleep / supervised


def match_steps(
    pred_xz: torch.Tensor, target: SceneBatch, ordered: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Assigns each true object to a step by the Hungarian algorithm on xz distance.

    ordered=True (AIR): the first K steps of a K-object scene are matched (the process must
    say "present" K times, then stop). ordered=False (slot baseline): any K of the N slots.
    Returns index (B, N) long: the true object slot each step explains, and mask (B, N) bool.
    """
    B, N = pred_xz.shape[:2]
    index = torch.zeros(B, N, dtype=torch.long)
    mask = torch.zeros(B, N, dtype=torch.bool)
    counts = target.present.sum(1).tolist()
    pred = pred_xz.detach().cpu().numpy()
    truth = target.xz.detach().cpu().numpy()
    for b, k in enumerate(counts):
        if k == 0:
            continue
        candidates = pred[b, :k] if ordered else pred[b]
        cost = np.linalg.norm(candidates[:, None, :] - truth[b, None, :k, :], axis=-1)
        rows, cols = linear_sum_assignment(cost)
        index[b, rows], mask[b, rows] = torch.as_tensor(cols), True
    return index.to(pred_xz.device), mask.to(pred_xz.device)


def sleep_loss(
    out: AIROutput, target: SceneBatch, latents: LatentSpace, ordered: bool = True
) -> dict[str, torch.Tensor]:
    """Negative log q(z | x) of the true latents, per scene, averaged over the batch.

    `out` may hold more steps than `target` has slots (N >= max_objects): AIR is then
    taught to stop, every step past a scene's count is trained "absent"."""
    pres_logit = out.stack("pres_logit")  # (B, N)
    xz_loc, xz_scale = out.stack("xz_loc"), out.stack("xz_scale")  # (B, N, 2)
    B, N = pres_logit.shape
    index, matched = match_steps(latents.squash(xz_loc), target, ordered)
    # Presence: AIR's steps < K say "present", every later step says "absent". Training the
    # steps past the stop too (q run for more steps than the prior's maximum) is what keeps
    # extra steps off when inference allows more steps than training scenes held.
    pres_loss = nn.functional.binary_cross_entropy_with_logits(
        pres_logit, matched.float(), reduction="none"
    )
    true_xz = _gather(target.xz, index)  # (B, N, 2)
    true_u = latents.unsquash(true_xz)
    true_shape, true_yaw = _gather(target.shape, index), _gather(target.yaw, index)
    # Means are trained by robust errors in world units, q's stds by the NLL of detached
    # errors. A Gaussian NLL also pulls the mean with a force ~ error / std^2: as the std
    # shrinks that force grows into noise that swamps every other signal in the shared
    # layers (presence and yaw stopped learning altogether).
    xz_error = _robust((latents.squash(xz_loc) - true_xz) / POSITION_SCALE)
    xz_nll = -Normal(xz_loc.detach(), xz_scale).log_prob(true_u).sum(-1)
    coarse = _robust((latents.squash(out.stack("coarse_u")) - true_xz) / POSITION_SCALE)
    shape_nll = nn.functional.cross_entropy(
        out.stack("shape_logits").flatten(0, 1), true_shape.flatten(), reduction="none"
    ).view(B, N)
    k = latents.order(true_shape)
    # The angle error in symmetry space, back in yaw units: a cube at 5 and 95 deg agree.
    symmetry_error = wrap_angle(out.stack("yaw_direction") - k * true_yaw)
    # The NLL trains q's yaw std only. Through atan2 its pull on the mean explodes while
    # the predicted vector is near zero (as it is at initialisation) and the noise drowned
    # the yaw signal; a squared error on the vector itself trains the mean instead.
    yaw_nll = -Normal(0.0, out.stack("yaw_scale")).log_prob(symmetry_error.detach() / k)
    target_vector = torch.stack([torch.cos(k * true_yaw), torch.sin(k * true_yaw)], -1)
    yaw_vector_error = (out.stack("yaw_vector") - target_vector).pow(2).sum(-1)
    has_yaw = latents.has_yaw[true_shape]
    m = matched.float()
    terms = {
        "presence": pres_loss.sum(1).mean(),
        "position": (xz_error * m).sum(1).mean(),
        "position_std": (xz_nll * m).sum(1).mean(),
        "glimpse": (coarse * m).sum(1).mean(),  # steers the first glimpse
        "shape": (shape_nll * m).sum(1).mean(),
        "yaw": (yaw_nll * has_yaw * m).sum(1).mean(),
        "yaw_vector": (yaw_vector_error * has_yaw * m).sum(1).mean(),
    }
    if out.grid is not None:
        terms.update(_cell_terms(out, true_xz, m))
    if out.camera is not None and target.eye is not None:
        terms.update(_camera_terms(out, target.eye))
    terms["loss"] = sum(terms.values())
    return terms


def _camera_terms(out: AIROutput, true_eye: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sleep terms of q's camera latent (model/camera.py), per image: its mean eye by a
    robust error in world units towards the scene's true eye (B, 3), its std by the NLL of
    the detached mean (as the positions')."""
    camera = out.camera
    assert camera is not None
    true_eye = true_eye.to(camera.mean_eye)
    error = _robust((camera.mean_eye - true_eye) / POSITION_SCALE)
    nll = -Normal(camera.loc.detach(), camera.scale).log_prob(camera.unsquash(true_eye))
    return {"camera": error.mean(), "camera_std": nll.sum(-1).mean()}


POSITION_SCALE = 0.1  # world units (about 2 pixels at the workspace centre)
OFFSET_SCALE = 0.25  # cells (2 pixels at 64 x 64 with 8-pixel cells)


def _cell_terms(
    out: AIROutput, true_xz: torch.Tensor, matched: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Sleep terms of the spatial where (model/spatial.py): each matched step's cell logits
    by cross-entropy towards the cell that sees its true object (B, N, 2 xz), and that
    cell's offset (whatever cell the step chose) towards the object's point in it."""
    assert out.grid is not None
    true_cell, true_offset = out.grid.locate(true_xz)  # (B, N), (B, N, 2)
    logits = out.stack("where_logits")  # (B, N, C)
    B, N, C = logits.shape
    cell_nll = nn.functional.cross_entropy(
        logits.flatten(0, 1), true_cell.flatten(), reduction="none"
    ).view(B, N)
    offsets = out.stack("cell_offsets")  # (B, N, C, 2)
    at_true = offsets.gather(2, true_cell[..., None, None].expand(B, N, 1, 2))[:, :, 0]
    offset_error = _robust((at_true - true_offset) / OFFSET_SCALE)
    return {
        "where_cell": (cell_nll * matched).sum(1).mean(),
        "where_offset": (offset_error * matched).sum(1).mean(),
    }


def stage_loss(stage: str, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """What one optimiser step of a stage minimises: the sleep loss, or the ELBO's
    reparameterised, score-function and baseline terms together."""
    if stage == "sleep":
        return terms["loss"]
    return terms["loss_reparam"] + terms["loss_reinforce"] + terms["loss_baseline"]


def _robust(error: torch.Tensor) -> torch.Tensor:
    """Huber loss of (..., 2) errors summed over the last dim: squared near zero, linear
    (bounded gradient) for the large errors of an untrained net."""
    return nn.functional.smooth_l1_loss(error, torch.zeros_like(error), reduction="none").sum(-1)


def _gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, M[, D]) picked by index (B, N) along dim 1 -> (B, N[, D])."""
    if values.dim() == 2:
        return values.gather(1, index)
    return values.gather(1, index[..., None].expand(*index.shape, values.shape[-1]))


# ---------------------------------------------------------------------------- ELBO


class NVILBaseline(nn.Module):
    """Takes (image code, step state) to a guess of each step's learning signal, and keeps
    running statistics of the residual to centre and scale it (NVIL, section 3.3)."""

    def __init__(self, feature_dim: int, hidden_dim: int, momentum: float = 0.9):
        super().__init__()
        self.net = mlp(feature_dim + hidden_dim, 128, 1)
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("var", torch.ones(()))

    def forward(self, features: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """features (B, F), hidden (B, N, H) -> (B, N); inputs are detached."""
        N = hidden.shape[1]
        inputs = torch.cat([features.detach()[:, None].expand(-1, N, -1), hidden.detach()], -1)
        return self.net(inputs).squeeze(-1)

    def normalise(self, residual: torch.Tensor, reached: torch.Tensor) -> torch.Tensor:
        values = residual.detach()[reached]
        if self.training and values.numel() > 1:
            self.mean.mul_(self.momentum).add_((1 - self.momentum) * values.mean())
            self.var.mul_(self.momentum).add_((1 - self.momentum) * values.var())
        return (residual.detach() - self.mean) / self.var.sqrt().clamp(min=1.0)


def score_function_surrogate(log_q: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    """A loss whose gradient is minus the score-function (REINFORCE) estimate of the gradient
    of E_q[signal]: -signal * grad log q. log_q, signal: (B, N) per step; signal is treated
    as a constant (the centred, scaled learning signal)."""
    return -(signal.detach() * log_q).sum(1).mean()


def elbo_terms(
    out: AIROutput,
    images: torch.Tensor,
    render: RenderFn,
    world: World,
    latents: LatentSpace,
    baseline: NVILBaseline,
    shape_log_prior: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """ELBO of a sampled AIROutput (model run in "sample" mode) and its surrogate losses."""
    z_pres = out.stack("z_pres")  # (B, N) 0/1, zero after the first absent step
    reached = out.stack("alive_before")  # (B, N) steps whose presence was decided
    present = z_pres > 0.5
    xz_u, shape, yaw = out.stack("xz_u"), out.stack("shape"), out.stack("yaw")
    eye = None if out.camera is None else out.camera.eye  # q's camera, reparameterised
    scene = SceneBatch(shape, present, latents.squash(xz_u), yaw, eye)
    log_lik = gaussian_log_likelihood(images, render(scene, "soft"), world.pixel_sigma)  # (B,)

    # Per-step log q and log p of what each step chose (B, N).
    p, r = present.float(), reached.float()
    logq_pres = Bernoulli(logits=out.stack("pres_logit")).log_prob(z_pres) * r
    logq_shape = Categorical(logits=out.stack("shape_logits")).log_prob(shape) * p
    logp_shape = shape_log_prior.to(images)[shape] * p
    xz_loc, xz_scale = out.stack("xz_loc"), out.stack("xz_scale")
    logq_xz = (
        Normal(xz_loc, xz_scale).log_prob(xz_u).sum(-1) - latents.log_abs_det_jacobian(xz_u)
    ) * p
    logp_xz = -math.log(latents.area) * p
    k, has_yaw = latents.order(shape), latents.has_yaw[shape].float() * p
    yaw_mean = out.stack("yaw_direction") / k
    logq_yaw = Normal(yaw_mean, out.stack("yaw_scale")).log_prob(yaw) * has_yaw
    logp_yaw = -torch.log(2 * math.pi / k) * has_yaw  # uniform over one symmetry period
    count_prior = torch.tensor(world.prior.count_probs, device=images.device).clamp(min=1e-12)
    logp_count = count_prior.log()[present.sum(1)]  # (B,)

    kl_step = (logq_pres + logq_shape + logq_xz + logq_yaw) - (logp_shape + logp_xz + logp_yaw)
    elbo = log_lik + logp_count - kl_step.sum(1)  # (B,)
    if out.camera is not None:  # the camera latent, once per image (model/camera.py)
        elbo = elbo - (out.camera.log_q() - out.camera.log_prior())

    # Learning signal of step t's discrete choices: the terms they affect, i.e. the
    # likelihood, the count prior and the KL of steps t, t+1, ... (credit assignment).
    future_kl = kl_step.flip(1).cumsum(1).flip(1)
    signal = (log_lik + logp_count)[:, None] - future_kl  # (B, N)
    n_pixels = images[0].numel()
    guess = baseline(out.features, out.stack("hidden")) * n_pixels  # predicts per pixel
    advantage = baseline.normalise(signal.detach() - guess, reached)
    logq_discrete = logq_pres + logq_shape
    if out.grid is not None:
        # The spatial where's cell (model/spatial.py): chosen at every reached step, before
        # presence; a discrete choice like the others. It is an auxiliary latent, so its
        # log q cancels from the ELBO itself (r(cell | u, x) = q(cell | x)).
        logq_discrete = logq_discrete + Categorical(logits=out.stack("where_logits")).log_prob(
            out.stack("cell")
        )
    return {
        "elbo": elbo.mean(),
        "log_likelihood": log_lik.mean(),
        "kl": kl_step.sum(1).mean(),
        "count": present.sum(1).float().mean(),
        # Maximise the ELBO through the reparameterised latents (scaled per pixel)...
        "loss_reparam": -elbo.mean() / n_pixels,
        # ...plus the score-function surrogate for the discrete ones...
        "loss_reinforce": score_function_surrogate(logq_discrete * r, advantage),
        # ...and fit the baseline to the signal (its own learning rate).
        "loss_baseline": (((signal.detach() - guess) / n_pixels).pow(2) * r).sum(1).mean(),
    }
