"""The spatial where (model/spatial.py): shapes, stopping, the grid, gradients, checkpoints."""

from __future__ import annotations

import pytest
import torch

from air3d.model import ModelConfig, Predictor, load_checkpoint
from air3d.model.build import build_model
from air3d.model.networks import MapEncoder
from air3d.model.objective import NVILBaseline, elbo_terms, sleep_loss
from air3d.model.spatial import CellGrid, SpatialAIR
from air3d.model.training import train
from air3d.renderer import SceneBatch, SceneRenderer
from air3d.renderer.camera import project, projection_matrix
from tests.conftest import tiny_train_config

TINY_SPATIAL = dict(
    where="spatial", map_channels=(8, 8, 8), map_context=1, feature_dim=16, hidden_dim=16,
    glimpse_channels=(8,), glimpse_dim=8,
)  # fmt: skip


def tiny(world, shapes, seed: int = 0) -> SpatialAIR:
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**TINY_SPATIAL), world, shapes)
    assert isinstance(model, SpatialAIR)
    return model


def test_every_output_has_its_shape(world, shapes):
    model = tiny(world, shapes)
    B, N, S = 3, world.max_objects + 2, world.image_size
    cells = (S // 8) ** 2  # three stride-2 convs
    for mode in ("mean", "sample"):
        out = model(torch.rand(B, 3, S, S), mode, N)
        assert len(out.steps) == N and out.features.shape == (B, 16)
        assert (out.grid.rows, out.grid.cols) == (S // 8, S // 8)
        expected = {
            "pres_logit": (B, N), "z_pres": (B, N), "xz_loc": (B, N, 2), "xz_u": (B, N, 2),
            "xz_scale": (B, N, 2), "coarse_u": (B, N, 2), "shape_logits": (B, N, len(shapes)),
            "shape": (B, N), "yaw": (B, N), "where_logits": (B, N, cells), "cell": (B, N),
            "cell_offsets": (B, N, cells, 2), "hidden": (B, N, 16),
        }  # fmt: skip
        for name, shape in expected.items():
            assert tuple(out.stack(name).shape) == shape, name
        assert out.stack("cell").max() < cells and out.stack("cell_offsets").abs().max() < 1


def test_the_map_encoder_keeps_a_frame_that_is_not_square():
    encoder = MapEncoder((8, 8, 8), context=1)
    assert encoder(torch.rand(2, 3, 120, 160)).shape == (2, 8, 15, 20)


def test_the_grid_reads_cells_onto_the_ground_and_back(world):
    matrix = projection_matrix(world)
    grid = CellGrid(matrix, 0.3, rows=6, cols=8)  # not square
    xz = torch.tensor([[0.0, 0.0], [0.9, -0.7], [-1.1, 1.0]])
    cell, offset = grid.locate(xz)
    assert offset.abs().max() <= 0.5  # within the cell that sees it
    assert torch.allclose(grid.ground(grid.image_point(cell, offset)), xz, atol=1e-4)
    points = project(torch.stack([xz[:, 0], torch.full((3,), 0.3), xz[:, 1]], -1), matrix)
    assert torch.allclose(grid.image_point(cell, offset), points, atol=1e-5)
    assert grid.centres().shape == (48, 2)
    assert grid.centres()[0].tolist() == pytest.approx([-0.875, -5 / 6])
    # a footprint peaks at the object's cell (its middle is a little above its base point)
    heights = torch.full((3,), 0.5)
    blobs = grid.footprints(xz, heights).flatten(1)
    assert blobs.shape == (3, 48) and blobs.max() <= 1
    middle, _ = grid.locate(xz)  # near enough at this map size
    assert (blobs.argmax(1) - middle).abs().max() <= grid.cols  # same cell or the one above


def test_it_stops_at_the_first_absent_step_and_maps_what_it_found(world, shapes):
    model = tiny(world, shapes)
    images = torch.rand(4, 3, world.image_size, world.image_size)
    for seed in range(3):
        torch.manual_seed(seed)
        z_pres = model(images, "sample", 6).stack("z_pres")
        assert (z_pres[:, 1:] <= z_pres[:, :-1]).all()  # never on again after an absent step
    with torch.no_grad():  # every step absent: nothing found, nothing answered
        model.refine_head[-1].bias[0] = -10.0
    assert model(images, "sample").stack("z_pres").sum() == 0
    answers = Predictor(model, world, shapes, "spatial", "").infer(images)
    assert [len(a.objects) for a in answers] == [0] * 4
    with torch.no_grad():  # every step present: each one's object joins the found map
        model.refine_head[-1].bias[0] = 10.0
    seen = []
    original = model.where_map.forward

    def spy(features, found):
        seen.append(found.clone())
        return original(features, found)

    model.where_map.forward = spy
    model(images, "mean", 3)
    assert seen[0].sum() == 0 and 0 < seen[1].sum() < seen[2].sum()


def _scene(shapes, xz):
    cube = shapes.index("cube")
    n = len(xz)
    return SceneBatch(
        torch.full((1, n), cube), torch.ones(1, n, dtype=torch.bool), torch.tensor([xz]),
        torch.zeros(1, n),
    )  # fmt: skip


def test_sleep_gradients_reach_the_cell_logits_and_offsets(world, shapes):
    model = tiny(world, shapes)
    truth = _scene(shapes, [[0.5, -0.4], [-0.6, 0.3]])
    images = SceneRenderer(world, shapes)(truth).detach()
    terms = sleep_loss(model(images, "mean", 5), truth, model.latents)
    assert {"where_cell", "where_offset", "presence", "position"} <= set(terms)
    terms["loss"].backward()
    grad = model.where_map.heads.weight.grad[:, :, 0, 0]  # (3: logit, dx, dy; C)
    assert grad[0].abs().sum() > 0 and grad[1:].abs().sum() > 0
    assert model.map_encoder.convs[0].weight.grad.abs().sum() > 0


def test_elbo_gradients_reach_the_cells_by_score_function_and_offsets_by_the_renderer(
    world, shapes
):
    model = tiny(world, shapes, seed=2)
    renderer = SceneRenderer(world, shapes)
    images = renderer(_scene(shapes, [[0.2, 0.1]])).detach()
    torch.manual_seed(0)
    out = model(images, "sample")
    baseline = NVILBaseline(16, 16)
    terms = elbo_terms(out, images, renderer, world, model.latents, baseline, torch.zeros(4))
    assert torch.isfinite(terms["elbo"])
    heads = model.where_map.heads.weight
    terms["loss_reinforce"].backward(retain_graph=True)
    assert heads.grad[0].abs().sum() > 0  # the cell's log q, scored by the learning signal
    heads.grad = None
    terms["loss_reparam"].backward()
    if out.stack("z_pres").sum() > 0:  # an object drawn: its position came from the offset
        assert heads.grad[1:].abs().sum() > 0


def test_a_spatial_checkpoint_trains_round_trips_and_answers_as_its_model(tmp_path):
    model = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_SPATIAL.items()}
    metrics = train(tiny_train_config(tmp_path, sleep_steps=2, elbo_steps=1, model=model))
    assert "where_cell" not in metrics and "elbo" in metrics  # the last logged step: ELBO
    checkpoint = load_checkpoint(tmp_path / "model.pt")
    assert checkpoint["model_config"]["where"] == "spatial"
    assert any(name.startswith("where_map.") for name in checkpoint["model"])
    eager = Predictor.from_checkpoint(tmp_path / "model.pt", fit=False, frozen=False)
    frozen = Predictor.from_checkpoint(tmp_path / "model.pt", fit=False, frozen=True)
    assert isinstance(eager.model, SpatialAIR)
    for batch in (1, 3):  # q's frozen graph (model/frozen.py) answers as the eager model
        images = torch.rand(batch, 3, eager.image_size, eager.image_size)
        expected, presence, shape_probs, _ = eager._ask_q(images)
        answer, frozen_presence, frozen_shape_probs, _ = frozen._ask_q(images)
        torch.testing.assert_close(frozen_presence, presence, atol=1e-5, rtol=0)
        torch.testing.assert_close(frozen_shape_probs, shape_probs, atol=1e-5, rtol=0)
        torch.testing.assert_close(answer.xz, expected.xz, atol=1e-5, rtol=0)
        assert torch.equal(answer.present, expected.present)


def test_an_unknown_where_is_refused_by_name(world, shapes):
    with pytest.raises(ValueError, match="unknown where 'grid'; known: regress, spatial"):
        build_model(ModelConfig(where="grid"), world, shapes)
