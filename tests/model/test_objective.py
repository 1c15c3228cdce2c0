"""The objective: score-function gradients, matching, the sleep loss, the ELBO's gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical

from air3d.model.air import AIR
from air3d.model.config import ModelConfig
from air3d.model.objective import (
    NVILBaseline,
    elbo_terms,
    match_steps,
    score_function_surrogate,
    sleep_loss,
)
from air3d.renderer import SceneBatch, SceneRenderer

TINY = ModelConfig(
    encoder_channels=(8, 8), feature_dim=16, hidden_dim=16, glimpse_channels=(8,), glimpse_dim=8
)


def test_score_function_gradient_matches_exact_gradient_in_expectation():
    torch.manual_seed(0)
    logits = torch.tensor([0.3, -0.5, 0.1], requires_grad=True)
    f = torch.tensor([1.0, 5.0, -2.0])  # a reward per outcome
    exact = torch.autograd.grad((torch.softmax(logits, 0) * f).sum(), logits)[0]

    samples = Categorical(logits=logits).sample((200_000,))
    log_q = Categorical(logits=logits).log_prob(samples)[:, None]  # (B, 1): one step
    baseline = (torch.softmax(logits, 0) * f).sum().detach()  # centring keeps it unbiased
    loss = score_function_surrogate(log_q, (f[samples] - baseline)[:, None])
    estimate = -torch.autograd.grad(loss, logits)[0]
    assert torch.allclose(estimate, exact, atol=0.03), (estimate, exact)


def test_score_function_estimate_is_wrong_for_a_wrong_signal():
    """The check above can fail: a signal that ignores the outcome gives a zero gradient."""
    logits = torch.tensor([0.3, -0.5, 0.1], requires_grad=True)
    samples = Categorical(logits=logits).sample((20_000,))
    log_q = Categorical(logits=logits).log_prob(samples)[:, None]
    loss = score_function_surrogate(log_q, torch.ones(20_000, 1))
    estimate = -torch.autograd.grad(loss, logits)[0]
    exact = torch.autograd.grad(
        (torch.softmax(logits, 0) * torch.tensor([1.0, 5.0, -2.0])).sum(), logits
    )[0]
    assert not torch.allclose(estimate, exact, atol=0.1)


def test_ordered_matching_uses_the_first_k_steps(world):
    pred = torch.tensor([[[1.0, 1.0], [-1.0, -1.0], [0.0, 0.0]]])
    target = SceneBatch(
        shape=torch.tensor([[0, 1, 0]]),
        present=torch.tensor([[True, True, False]]),
        xz=torch.tensor([[[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]]),
        yaw=torch.zeros(1, 3),
    )
    index, mask = match_steps(pred, target, ordered=True)
    assert mask.tolist() == [[True, True, False]]
    assert index[0, :2].tolist() == [1, 0]  # step 0 explains object 1, step 1 object 0
    index, mask = match_steps(pred, target, ordered=False)
    assert mask.sum() == 2 and not mask[0, 2]


def test_sleep_loss_is_symmetric_in_cube_yaw(world, shapes):
    torch.manual_seed(0)
    model = AIR(TINY, world, shapes)
    images = torch.rand(1, 3, world.image_size, world.image_size)
    out = model(images, "mean")
    cube = shapes.index("cube")

    def loss_for(yaw_deg: float) -> float:
        target = SceneBatch(
            shape=torch.tensor([[cube, 0, 0]]),
            present=torch.tensor([[True, False, False]]),
            xz=torch.zeros(1, 3, 2),
            yaw=torch.tensor([[math.radians(yaw_deg), 0, 0]]),
        )
        return float(sleep_loss(out, target, model.latents)["yaw"].detach())

    assert loss_for(10.0) == pytest.approx(loss_for(100.0), abs=1e-4)
    assert loss_for(10.0) != pytest.approx(loss_for(40.0), abs=1e-4)


def test_elbo_gradients_reach_position_and_yaw_through_the_renderer(world, shapes):
    torch.manual_seed(1)
    model = AIR(TINY, world, shapes)
    renderer = SceneRenderer(world, shapes)
    cube = shapes.index("cube")
    truth = SceneBatch(
        torch.tensor([[cube]]), torch.tensor([[True]]), torch.tensor([[[0.2, 0.1]]]),
        torch.tensor([[0.3]]),
    )  # fmt: skip
    images = renderer(truth).detach()
    out = model(images, "sample")
    for step in out.steps:  # force one present cube so that the render depends on it
        step.xz_u.retain_grad()
        step.yaw.retain_grad()
    out.steps[0].z_pres = torch.ones(1)
    out.steps[0].shape = torch.tensor([cube])
    out.steps[0].yaw = out.steps[0].yaw_direction / 4 + 0.0 * out.steps[0].yaw
    out.steps[0].yaw.retain_grad()
    baseline = NVILBaseline(TINY.feature_dim, TINY.hidden_dim)
    terms = elbo_terms(out, images, renderer, world, model.latents, baseline, torch.zeros(4))
    terms["loss_reparam"].backward()
    assert out.steps[0].xz_u.grad.abs().sum() > 0
    assert out.steps[0].yaw.grad.abs().sum() > 0
    assert torch.isfinite(terms["elbo"])


def test_sleep_loss_trains_every_step_past_the_count_absent(world, shapes):
    """With more steps than the prior's maximum (extra steps), steps 0..K-1 of a K-object
    scene are trained "present" and every later one, the extra steps included, "absent"."""
    torch.manual_seed(0)
    model = AIR(TINY, world, shapes)
    images = torch.rand(2, 3, world.image_size, world.image_size)
    out = model(images, "mean", world.max_objects + 3)  # 6 steps, scenes of <= 3 objects
    target = SceneBatch(
        shape=torch.zeros(2, 3, dtype=torch.long),
        present=torch.tensor([[True, True, False], [False, False, False]]),
        xz=torch.tensor([[[0.5, 0.5], [-0.5, -0.5], [0.0, 0.0]]]).expand(2, -1, -1),
        yaw=torch.zeros(2, 3),
    )
    logits = out.stack("pres_logit")  # (2, 6)
    wanted = torch.tensor([[1.0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    expected = (
        torch.nn.functional.binary_cross_entropy_with_logits(logits, wanted, reduction="none")
        .sum(1)
        .mean()
    )
    assert float(sleep_loss(out, target, model.latents)["presence"]) == pytest.approx(
        float(expected), rel=1e-5
    )
    # Its gradient pushes the last extra step towards "absent" in both scenes.
    last = out.steps[-1].pres_logit
    grad = torch.autograd.grad(sleep_loss(out, target, model.latents)["presence"], last)[0]
    assert (grad > 0).all()
