"""q's fast paths give the answers of the plain computation they replace.

The glimpse (crop and blend instead of grid_sample; one affine map instead of squash and
camera projection) is checked against the reference formulas, values and gradients; the
frozen graph the Predictor runs is checked against the eager model it was traced from.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from air3d.model import AIR, DEFAULT_CHECKPOINT, ModelConfig, Predictor, load_checkpoint
from air3d.model.air import StepInputs
from air3d.model.build import build_model
from air3d.model.networks import extract_glimpses
from air3d.renderer.camera import project

TINY = ModelConfig(
    encoder_channels=(8, 8), feature_dim=16, hidden_dim=16, glimpse_channels=(8,), glimpse_dim=8
)


def grid_sample_glimpses(images: torch.Tensor, centres: torch.Tensor, size: int) -> torch.Tensor:
    """The reference: AIR's spatial transformer as affine_grid + grid_sample."""
    B, window = images.shape[0], size / images.shape[-1]
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0] = window
    theta[:, 1, 1] = window
    theta[:, :, 2] = centres
    grid = nn.functional.affine_grid(theta, (B, 3, size, size), align_corners=False)
    return nn.functional.grid_sample(images, grid, align_corners=False, padding_mode="border")


def test_glimpses_equal_grid_sample_with_gradients():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(40, 3, 64, 64, generator=generator)
    # inside, across the border and wholly outside the image
    centres = (torch.rand(40, 2, generator=generator) * 3.0 - 1.5).requires_grad_()
    expected = grid_sample_glimpses(images, centres, 24)
    glimpses = extract_glimpses(images, centres, 24)
    assert glimpses.shape == (40, 3, 24, 24)
    torch.testing.assert_close(glimpses, expected, atol=1e-5, rtol=0)
    weights = torch.randn(expected.shape, generator=generator)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), centres)
    (grad,) = torch.autograd.grad((glimpses * weights).sum(), centres)
    torch.testing.assert_close(grad, expected_grad, atol=1e-4 * expected_grad.abs().max(), rtol=0)


def test_glimpse_looks_where_the_camera_projects_the_position(world, shapes):
    model = AIR(TINY, world, shapes)
    images = torch.rand(8, 3, world.image_size, world.image_size)
    u = torch.randn(8, 2)
    xz = model.latents.squash(u)
    point = torch.stack([xz[:, 0], torch.full_like(xz[:, 0], 0.3), xz[:, 1]], dim=1)
    expected = grid_sample_glimpses(images, project(point, model.camera), TINY.glimpse_size)
    inputs = StepInputs(images, model.encoder(images), model._glimpse_projection())
    torch.testing.assert_close(model._glimpse(inputs, u), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["air", "supervised"])
def test_frozen_predictor_answers_as_the_eager_model(kind, world, shapes):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**{**TINY.to_dict(), "kind": kind}), world, shapes)
    eager = Predictor(model, world, shapes, "tiny", "", frozen=False)
    frozen = Predictor(model, world, shapes, "tiny", "", frozen=True)
    for batch in (1, 3):  # the graph is traced at batch 2
        images = torch.rand(batch, 3, world.image_size, world.image_size)
        expected, presence, shape_probs, _ = eager._ask_q(images)
        answer, frozen_presence, frozen_shape_probs, _ = frozen._ask_q(images)
        torch.testing.assert_close(frozen_presence, presence, atol=1e-5, rtol=0)
        torch.testing.assert_close(frozen_shape_probs, shape_probs, atol=1e-5, rtol=0)
        torch.testing.assert_close(answer.xz, expected.xz, atol=1e-5, rtol=0)
        torch.testing.assert_close(answer.yaw, expected.yaw, atol=1e-4, rtol=0)
        assert torch.equal(answer.shape, expected.shape)
        assert torch.equal(answer.present, expected.present)
    assert frozen._frozen_q is not None


def test_frozen_graph_follows_new_weights(world, shapes):
    torch.manual_seed(0)
    model = AIR(TINY, world, shapes)
    predictor = Predictor(model, world, shapes, "tiny", "", frozen=True)
    images = torch.rand(2, 3, world.image_size, world.image_size)
    before = predictor._ask_q(images)[1]
    model.load_state_dict(AIR(TINY, world, shapes).state_dict())  # other weights, in place
    after = predictor._ask_q(images)[1]
    expected = Predictor(model, world, shapes, "tiny", "", frozen=False)._ask_q(images)[1]
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(after, before)


def test_model_still_pickles_copies_and_trains_after_frozen_inference(world, shapes):
    model = AIR(TINY, world, shapes)
    Predictor(model, world, shapes, "tiny", "", frozen=True).warmup()
    copy.deepcopy(model)
    pickle.loads(pickle.dumps(model))
    model.train()
    out = model(torch.rand(2, 3, world.image_size, world.image_size), "sample")
    out.stack("xz_u").sum().backward()
    assert model.where_head[0].weight.grad is not None


def test_shipped_weights_keep_their_keys_and_shapes(world, shapes):
    checkpoint = load_checkpoint(DEFAULT_CHECKPOINT, "cpu")
    config = ModelConfig.from_dict(checkpoint["model_config"])
    expected = {name: tuple(t.shape) for name, t in checkpoint["model"].items()}
    state = AIR(config, world, shapes).state_dict()
    assert {name: tuple(t.shape) for name, t in state.items()} == expected
