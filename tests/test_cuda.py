"""The CUDA path: the same renderer, model and training step on a GPU. Skipped without one."""

from __future__ import annotations

import pytest
import torch

from air3d.model import Predictor
from air3d.model.training import train
from air3d.renderer import Scene, SceneBatch, SceneRenderer
from tests.conftest import tiny_train_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_render_matches_cpu(world, shapes):
    scene = Scene.from_json(
        {"objects": [{"shape": "cube", "position": [0.3, 0.3, -0.2], "yaw_deg": 25.0},
                     {"shape": "cone", "position": [-0.6, 0.3, 0.5], "yaw_deg": 0.0}]},
        world, shapes,
    )  # fmt: skip
    cpu = SceneRenderer(world, shapes, "cpu").render_scenes([scene])
    gpu = SceneRenderer(world, shapes, "cuda").render_scenes([scene]).cpu()
    assert (cpu - gpu).abs().gt(0.05).float().mean() < 0.01  # edge pixels may differ


def test_cuda_soft_gradients_reach_the_scene(world, shapes):
    renderer = SceneRenderer(world, shapes, "cuda")
    xz = torch.tensor([[[0.2, 0.1]]], device="cuda", requires_grad=True)
    batch = SceneBatch(
        torch.zeros(1, 1, dtype=torch.long, device="cuda"),
        torch.ones(1, 1, dtype=torch.bool, device="cuda"),
        xz,
        torch.zeros(1, 1, device="cuda"),
    )
    renderer(batch, "soft").mean().backward()
    assert xz.grad is not None and xz.grad.abs().sum() > 0


def test_cuda_training_and_inference(tmp_path):
    train(tiny_train_config(tmp_path, device="cuda"))
    predictor = Predictor.from_checkpoint(tmp_path / "model.pt", device="cuda")
    assert predictor.device.type == "cuda"
    assert len(predictor.infer(torch.rand(2, 3, 64, 64))) == 2
