"""q's camera latent (model/camera.py): in a world whose camera moves per scene, q
estimates each image's eye, reads positions through it, and is taught it by sleep."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from air3d.model.build import build_model
from air3d.model.config import ModelConfig
from air3d.model.objective import NVILBaseline, elbo_terms, sleep_loss
from air3d.model.scene_pool import ScenePool
from air3d.renderer import SceneRenderer
from air3d.renderer.camera import project, projection_matrices, projection_matrix

TINY = dict(
    encoder_channels=(8, 8), feature_dim=16, hidden_dim=16, glimpse_channels=(8,),
    glimpse_dim=8, map_channels=(8, 8, 8), map_context=1,
)  # fmt: skip
JITTER = 0.3


@pytest.fixture(scope="module")
def jittered(world):
    return replace(world, camera=replace(world.camera, jitter=JITTER))


@pytest.fixture(scope="module")
def pool(jittered, shapes):
    return ScenePool.sample(12, 3, jittered, shapes, SceneRenderer(jittered, shapes))


def tiny(world, shapes, where: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(where=where, **TINY), world, shapes)


def test_projection_matrices_are_the_moved_cameras_and_project_broadcasts(world):
    eye = torch.tensor([world.camera.position, [c + 0.2 for c in world.camera.position]])
    matrices = projection_matrices(world, eye)
    assert matrices.shape == (2, 4, 4)
    assert torch.allclose(matrices[0], projection_matrix(world))
    moved = replace(world, camera=world.camera.moved_to(eye[1].tolist()))
    assert torch.allclose(matrices[1], projection_matrix(moved), atol=1e-6)
    points = torch.randn(2, 5, 3)
    together = project(points, matrices[:, None])
    assert torch.allclose(together[1], project(points[1], matrices[1]), atol=1e-6)


def test_the_pool_keeps_each_scenes_eye_and_an_old_pool_loads_without(pool, tmp_path):
    assert pool.latents.eye is not None and pool.latents.eye.shape == (12, 3)
    _, latents = pool.batch(torch.tensor([3, 1]), torch.device("cpu"))
    assert torch.equal(latents.eye, pool.latents.eye[[3, 1]])
    old = ScenePool(pool.images, replace(pool.latents, eye=None))
    assert old.batch(torch.tensor([0]), torch.device("cpu"))[1].eye is None


def test_the_pool_cache_round_trip_keeps_the_eye(jittered, shapes, tmp_path):
    renderer = SceneRenderer(jittered, shapes)
    first = ScenePool.cached(4, 5, jittered, shapes, renderer, str(tmp_path))
    second = ScenePool.cached(4, 5, jittered, shapes, renderer, str(tmp_path))
    assert first.latents.eye is not None and torch.equal(first.latents.eye, second.latents.eye)
    path = next(tmp_path.glob("pool-*.pt"))  # a pool saved before the eye was kept
    data = torch.load(path, weights_only=True)
    torch.save({"images": data["images"], "latents": data["latents"][:4]}, path)
    assert ScenePool.cached(4, 5, jittered, shapes, renderer, str(tmp_path)).latents.eye is None


@pytest.mark.parametrize("where", ["regress", "spatial"])
def test_a_world_without_jitter_has_no_camera_head(world, jittered, shapes, where):
    plain, moving = tiny(world, shapes, where), tiny(jittered, shapes, where)
    names = {name for name, _ in plain.named_parameters()}
    assert not any("camera" in name for name in names)
    assert plain(torch.rand(1, 3, world.image_size, world.image_size)).camera is None
    added = {name for name, _ in moving.named_parameters()} - names
    assert added and all(name.startswith("camera_head.") for name in added)


@pytest.mark.parametrize("where", ["regress", "spatial"])
@pytest.mark.parametrize("mode", ["mean", "sample"])
def test_the_camera_has_its_shape_and_stays_in_the_jitter_box(jittered, shapes, where, mode):
    model = tiny(jittered, shapes, where)
    with torch.no_grad():  # a head pushed to its edges: the eye stays in the box
        model.camera_head.net[-1].bias.fill_(50.0)
    S = jittered.image_size
    camera = model(torch.rand(3, 3, S, S), mode).camera
    for name in ("loc", "scale", "u", "eye", "mean_eye"):
        assert getattr(camera, name).shape == (3, 3), name
    offset = camera.eye - torch.tensor(jittered.camera.position)
    assert offset.abs().max() <= JITTER + 1e-5 and (camera.scale > 0).all()


@pytest.mark.parametrize("where", ["regress", "spatial"])
def test_the_glimpses_read_through_qs_camera(jittered, shapes, where):
    """q's answer changes with its eye: the positions are read through it."""
    model = tiny(jittered, shapes, where).eval()
    images = torch.rand(1, 3, jittered.image_size, jittered.image_size)
    with torch.no_grad():
        before = model(images).stack("xz_loc")
        model.camera_head.net[-1].bias.fill_(1.0)
        after = model(images).stack("xz_loc")
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("where", ["regress", "spatial"])
def test_a_sleep_step_has_a_camera_term_that_reaches_the_head(jittered, shapes, pool, where):
    model = tiny(jittered, shapes, where)
    images, targets = pool.batch(torch.arange(6), torch.device("cpu"))
    terms = sleep_loss(model(images, "mean"), targets, model.latents)
    assert {"camera", "camera_std"} <= set(terms) and terms["camera"] > 0
    terms["loss"].backward()
    for parameter in model.camera_head.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    # targets without eyes (a pool cached before eyes were kept): no camera terms
    old = sleep_loss(model(images, "mean"), replace(targets, eye=None), model.latents)
    assert "camera" not in old


def test_a_short_sleep_fit_lowers_the_camera_error(jittered, shapes, pool):
    model = tiny(jittered, shapes, "regress")
    images, targets = pool.batch(torch.arange(12), torch.device("cpu"))

    def error() -> float:
        with torch.no_grad():
            return float((model(images).camera.mean_eye - targets.eye).norm(dim=-1).mean())

    start = error()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimiser.zero_grad()
        sleep_loss(model(images, "mean"), targets, model.latents)["loss"].backward()
        optimiser.step()
    assert error() < start


def test_the_elbo_renders_from_qs_camera_and_reaches_the_head(jittered, shapes, pool):
    model = tiny(jittered, shapes, "regress")
    images, _ = pool.batch(torch.arange(2), torch.device("cpu"))
    renderer = SceneRenderer(jittered, shapes)
    seen = []

    def render(scene, mode):
        seen.append(scene.eye)
        return renderer(scene, mode)

    baseline = NVILBaseline(16, 16)
    prior = torch.zeros(len(shapes))
    terms = elbo_terms(model(images, "sample"), images, render, jittered, model.latents,
                       baseline, prior)  # fmt: skip
    assert seen[0] is not None and seen[0].shape == (2, 3)
    terms["loss_reparam"].backward()
    assert model.camera_head.net[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("frozen", [False, True])
def test_answers_carry_qs_camera_in_a_jittered_world_only(
    world, jittered, shapes, pool, tmp_path, frozen
):
    from air3d.model import Predictor
    from air3d.renderer import Scene

    images, _ = pool.batch(torch.arange(2), torch.device("cpu"))
    for w, moves in ((jittered, True), (world, False)):
        model = tiny(w, shapes, "regress")
        predictor = Predictor(model, w, shapes, "tiny", "0", refine=0, fit=True, frozen=frozen)
        answers = predictor.infer(images)
        assert all((a.camera is not None) == moves for a in answers)
        data = answers[0].to_json()
        assert ("camera" in data) == moves
        if moves:
            eye = torch.tensor(data["camera"]["position"])
            assert (eye - torch.tensor(w.camera.position)).abs().max() <= JITTER
            expected = model(images[:1]).camera.mean_eye[0]
            assert torch.allclose(eye, expected, atol=1e-5)
            scene = Scene.from_json(data, w, shapes)  # valid input, its camera kept
            assert scene.camera == answers[0].scene().camera
        assert len(predictor.assess(images, answers)) == 2


def test_refined_answers_keep_qs_camera(jittered, shapes, pool):
    from air3d.model import Predictor

    images, _ = pool.batch(torch.arange(2), torch.device("cpu"))
    model = tiny(jittered, shapes, "regress")
    predictor = Predictor(model, jittered, shapes, "tiny", "0", fit=False, frozen=False)
    plain, refined = predictor.infer(images), predictor.infer(images, refine=2)
    assert [a.camera for a in refined] == [a.camera for a in plain]
