"""PriorDensity: log p(z) of the world's prior, its separation rule, its count prior."""

from __future__ import annotations

import math

import pytest
import torch

from air3d.renderer import SceneBatch
from air3d.renderer.prior_density import PriorDensity


def test_prior_refuses_objects_closer_than_the_minimum_separation(world, shapes) -> None:
    prior = PriorDensity(world, shapes)
    gap = world.prior.min_separation
    xz = torch.tensor([[[0.0, 0.0], [gap * 0.9, 0.0]], [[0.0, 0.0], [gap * 1.1, 0.0]]])
    batch = SceneBatch(torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.bool),
                       xz, torch.zeros(2, 2))  # fmt: skip
    log_p = prior.log_prob(batch)
    assert log_p[0] == -math.inf
    ws = world.workspace
    area = (ws.x[1] - ws.x[0]) * (ws.z[1] - ws.z[0])
    expected = math.log(world.prior.count_probs[2]) + 2 * (
        math.log(1 / len(shapes)) - math.log(area) - math.log(2 * math.pi)
    )
    assert log_p[1].item() == pytest.approx(expected, rel=1e-5)


def test_counts_beyond_the_prior_get_a_uniform_count_prior(world, shapes) -> None:
    assert PriorDensity(world, shapes).log_count == [math.log(p) for p in world.prior.count_probs]
    beyond = PriorDensity(world, shapes, world.max_objects + 1).log_count
    assert beyond == pytest.approx([-math.log(world.max_objects + 2)] * (world.max_objects + 2))


def test_positions_are_clamped_into_the_workspace(world, shapes) -> None:
    xz = torch.tensor([[[5.0, -5.0], [0.1, 0.2]]])
    PriorDensity(world, shapes).clamp_to_workspace(xz)
    ws = world.workspace
    assert torch.allclose(xz, torch.tensor([[[ws.x[1], ws.z[0]], [0.1, 0.2]]]))


def test_empty_slots_hold_nothing(world, shapes) -> None:
    prior = PriorDensity(world, shapes)
    full = SceneBatch(torch.tensor([[1]]), torch.ones(1, 1, dtype=torch.bool),
                      torch.tensor([[[0.3, 0.2]]]), torch.zeros(1, 1))  # fmt: skip
    # The same one-object scene padded with an empty slot right on top of the object.
    padded = SceneBatch(torch.tensor([[1, 0]]), torch.tensor([[True, False]]),
                        torch.tensor([[[0.3, 0.2], [0.3, 0.2]]]), torch.zeros(1, 2))  # fmt: skip
    assert prior.log_prob(padded).item() == pytest.approx(prior.log_prob(full).item())
    nothing = SceneBatch(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.bool),
                         torch.zeros(1, 2, 2), torch.zeros(1, 2))  # fmt: skip
    assert prior.log_prob(nothing).item() == pytest.approx(math.log(world.prior.count_probs[0]))
