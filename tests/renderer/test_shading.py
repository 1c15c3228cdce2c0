"""Shading under lamps (renderer/shading.py): the clevr world's lamps, soft shadows, mirrors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import trimesh

from air3d.renderer import Scene, SceneBatch, SceneObject, SceneRenderer, World, open_world
from air3d.renderer.prior import sample_scenes
from air3d.renderer.shading import soften
from air3d.renderer.shapes import ShapeLibrary, ShapeMesh
from air3d.renderer.world import LampLight, ShadingConfig


@pytest.fixture(scope="module")
def clevr():
    world, shapes = open_world("clevr")
    assert world.shading is not None, "the clevr world is shaded by its lamps"
    return replace(world, image_size=48), shapes


def _one(shapes, shape="sphere", material="metal", x=0.0, z=0.0, yaw=30.0) -> Scene:
    spec = shapes.spec(shape, {"color": "gray", "size": "large", "material": material})
    return Scene((SceneObject(shape, (x, spec.height / 2, z), yaw, spec.attributes),))


def test_a_world_without_shading_has_none_in_its_plain_form(world: World) -> None:
    assert world.shading is None and "shading" not in world.to_dict()


def test_shading_round_trips_through_plain_data(clevr) -> None:
    world, _ = clevr
    again = World.from_dict(world.to_dict())
    assert again.shading == world.shading and len(world.shading.lamps) == 3


def test_bad_shading_is_refused(clevr) -> None:
    data = clevr[0].to_dict()
    data["shading"] = {**data["shading"], "horizon": 0.0}
    with pytest.raises(ValueError, match="horizon > 0"):
        World.from_dict(data)
    data["shading"] = {"lamps": [{"position": [0, 1], "intensity": 1.0}]}
    with pytest.raises(ValueError, match=r"shading.lamps\[0\]: position"):
        World.from_dict(data)


def test_the_floor_falls_off_away_from_the_lamps(clevr) -> None:
    world, shapes = clevr
    floor = SceneRenderer(world, shapes).ground_image()[0]  # (H, W, 3): the world camera's
    first, last = world.frame_rows
    rows = floor[first:last].mean(-1)
    assert rows.max() - rows.min() > 0.05, "area lamps light the floor unevenly"
    assert rows[0].mean() < rows[-1].mean(), "the far floor is darker than the near one"


def test_each_lamp_casts_its_own_shadow(clevr) -> None:
    world, shapes = clevr
    scene = _one(shapes, "cube", "rubber")
    empty = SceneRenderer(world, shapes).render_scenes([Scene()])[0]
    shadows = []
    for k in range(len(world.shading.lamps)):
        only = tuple(
            replace(lamp, shadow=lamp.shadow if i == k else 0.0)
            for i, lamp in enumerate(world.shading.lamps)
        )
        alone = replace(world, shading=replace(world.shading, lamps=only))
        image = SceneRenderer(alone, shapes).render_scenes([scene])[0]
        shadows.append((empty - image).amax(0) > 0.01)  # darker than the bare floor
    for a in range(len(shadows)):
        for b in range(a + 1, len(shadows)):
            assert (shadows[a] ^ shadows[b]).sum() > 5, "lamps at other places: other shadows"


def test_soft_shadow_edges(clevr) -> None:
    cover = torch.zeros(1, 16, 16, 1)
    cover[:, 4:12, 4:12] = 1.0
    soft = soften(cover, 1.0)
    assert soft.shape == cover.shape and 0 < soft[0, 4, 8, 0] < 1 and soft[0, 8, 8, 0] > 0.95
    assert torch.equal(soften(cover, 0.0), cover)


def test_metal_mirrors_the_floor(clevr) -> None:
    """Mirror-like metal: bright where it faces the floor, dark where it mirrors the sky, a
    wider spread of shades than rubber of the same colour."""
    world, shapes = clevr
    renderer = SceneRenderer(world, shapes)
    images = renderer.render_scenes(
        [_one(shapes, material="metal"), _one(shapes, material="rubber"), Scene()]
    )
    spread = []
    for image in images[:2]:
        on = (image - images[2]).abs().amax(0) > 0.05
        spread.append(image.mean(0)[on].std())
    assert spread[0] > spread[1]


@pytest.mark.parametrize("mode", ["crisp", "soft"])
def test_tabletop_kinds_render_as_before_beside_an_unshaded_world(mode, world, shapes) -> None:
    """A world that declares shading with no lamps and no mirrors still draws objects."""
    shaded = replace(world, shading=ShadingConfig(lamps=()))
    scene = Scene((SceneObject("cube", (0.0, 0.3, 0.0), 20.0),))
    image = SceneRenderer(shaded, shapes).render_scenes([scene], mode)
    assert image.shape == (1, 3, world.image_size, world.image_size)
    assert torch.isfinite(image).all()


def test_soft_gradients_reach_positions_and_yaws(clevr) -> None:
    world, shapes = clevr
    renderer = SceneRenderer(world, shapes)
    scene = Scene(
        _one(shapes, "cube", "metal", 0.5, 0.3).objects
        + _one(shapes, "cylinder", "rubber", -1.5, -1.0).objects
    )
    batch = SceneBatch.from_scenes([scene], shapes)
    xz = batch.xz.clone().requires_grad_(True)
    yaw = batch.yaw.clone().requires_grad_(True)
    image = renderer(SceneBatch(batch.shape, batch.present, xz, yaw), "soft")
    target = renderer.render_scenes([Scene()])
    ((image - target) ** 2).mean().backward()
    assert (xz.grad[0, :2].abs().sum(-1) > 0).all() and (yaw.grad[0, :2].abs() > 0).all()


@pytest.mark.parametrize(
    ("material", "offset"), [("rubber", (0.05, -0.04, 0.10)), ("metal", (-0.06, 0.05, -0.12))]
)
def test_soft_gradients_agree_with_finite_differences(clevr, material, offset) -> None:
    """As tests/renderer/test_renderer.py's: d loss / d (x, z, yaw) of a squared error
    against the crisp truth, analytic vs central differences, with the lamps' soft shadows
    and the metal's mirror in the image. On a sharp cube: the rounded one's corners hold
    more small faces within a pixel's blur radius than the K nearest kept, and which K
    are kept jumps as it moves (the next test bounds what that changes)."""
    world, shapes = clevr
    renderer = SceneRenderer(world, _with_sharp_cubes(shapes))
    truth = SceneBatch.from_scenes([_one(shapes, "cube", material, 0.1, 0.05, 20.0)], shapes)
    with torch.no_grad():
        target = renderer(truth, "crisp")
    delta = torch.tensor(offset)

    def loss(d: torch.Tensor) -> torch.Tensor:
        moved = SceneBatch(truth.shape, truth.present, truth.xz + d[:2], truth.yaw + d[2])
        return (renderer(moved, "soft") - target).pow(2).sum()

    params = delta.clone().requires_grad_(True)
    loss(params).backward()
    h = 1e-3
    with torch.no_grad():
        numeric = torch.stack(
            [(loss(delta + h * e) - loss(delta - h * e)) / (2 * h) for e in torch.eye(3)]
        )
    assert numeric[:2].norm() > 0.1, "the position gradient should not vanish"
    assert (params.grad - numeric).norm() <= 0.05 * numeric.norm(), f"{params.grad} vs {numeric}"
    assert torch.dot(params.grad[:2], delta[:2]) > 0  # descending moves it towards the truth


def _with_sharp_cubes(shapes: ShapeLibrary) -> ShapeLibrary:
    meshes = tuple(
        ShapeMesh(*_box(spec.height)) if spec.name == "cube" else mesh
        for spec, mesh in zip(shapes.specs, shapes.meshes, strict=True)
    )
    return ShapeLibrary(shapes.specs, meshes)


def _box(side: float) -> tuple[np.ndarray, np.ndarray]:
    box = trimesh.creation.box(extents=(side, side, side))
    return np.asarray(box.vertices, np.float32), np.asarray(box.faces, np.int64)


def test_soft_faces_per_pixel_hold_nearly_every_face_within_the_blur() -> None:
    """The world's K (soft_faces_per_pixel) keeps the K nearest faces within each pixel's
    blur radius: with too few, the soft image differs from the one with all of them, and
    the loss jumps where the cut changes. At the world's own size, few pixels may differ."""
    world, shapes = open_world("clevr")
    scenes = sample_scenes(world, shapes, 4, seed=3)
    with torch.no_grad():
        images = [
            SceneRenderer(
                replace(world, rendering=replace(world.rendering, **k)), shapes
            ).render_scenes(scenes, "soft")
            for k in ({}, {"soft_faces_per_pixel": 64})
        ]
    changed = ((images[0] - images[1]).abs().amax(1) > 0.05).float().mean()
    assert changed < 0.02, f"{changed:.2%} of pixels change with every face kept"


def test_lamps_and_gloss_are_learnable(clevr) -> None:
    world, shapes = clevr
    renderer = SceneRenderer(world, shapes)
    params = renderer.appearance.learn(["lamps", "gloss", "shadows"])
    image = renderer.render_scenes([_one(shapes, "sphere", "metal")], "soft")
    image.mean().backward()
    names = ["lamp_positions", "log_lamp_intensities", "mirror_logits", "lamp_shadow_logits"]
    for name in names:
        grad = getattr(renderer.appearance, name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert len(params) == 7
    again, again_shapes = renderer.appearance.to_config(world, shapes)
    assert again.shading.lamps[0].position == pytest.approx(
        world.shading.lamps[0].position, abs=1e-5
    )
    assert again_shapes.specs[1].mirror == pytest.approx(shapes.specs[1].mirror, abs=1e-3)


def test_learning_lamps_in_a_world_without_them_learns_nothing_there(world, shapes) -> None:
    renderer = SceneRenderer(world, shapes)
    assert renderer.appearance.learn(["lamps", "gloss"]) == []


def test_a_lamp_at_the_lamps_own_height_is_harmless(clevr) -> None:
    world, shapes = clevr
    low = replace(world.shading, lamps=(LampLight((3.0, 0.6, 0.0), 5.0),))
    image = SceneRenderer(replace(world, shading=low), shapes).render_scenes(
        [_one(shapes, "cube", "rubber")], "soft"
    )
    assert torch.isfinite(image).all()


@pytest.mark.parametrize("mode", ["crisp", "soft"])
def test_a_batch_renders_as_its_scenes_one_by_one(clevr, mode) -> None:
    world, shapes = clevr
    renderer = SceneRenderer(world, shapes)
    scenes = [_one(shapes, "cube", "rubber", 1.0, 0.5), Scene(), _one(shapes, "sphere", "metal")]
    with torch.no_grad():
        batched = renderer.render_scenes(scenes, mode)
        alone = torch.cat([renderer.render_scenes([scene], mode) for scene in scenes])
    assert (batched - alone).abs().max() < 1e-5


@pytest.mark.parametrize("mode", ["crisp", "soft"])
def test_lamps_floor_and_shadows_follow_each_scenes_camera(clevr, mode: str) -> None:
    """With lamps, a lit floor and lamp shadows, a scene's camera still draws what a world
    with that camera draws, in one batch with a scene from the world's camera."""
    world, shapes = clevr
    objects = sample_scenes(world, shapes, 1, seed=5)[0].objects
    eye = (7.9, 5.0, 6.2)
    with torch.no_grad():
        batched = SceneRenderer(world, shapes).render_scenes(
            [Scene(objects, eye), Scene(objects)], mode
        )
        moved = replace(world, camera=world.camera.moved_to(eye))
        alone = SceneRenderer(moved, shapes).render_scenes([Scene(objects)], mode)[0]
        fixed = SceneRenderer(world, shapes).render_scenes([Scene(objects)], mode)[0]
    torch.testing.assert_close(batched[0], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(batched[1], fixed, atol=1e-5, rtol=0)
    assert (batched[0] - batched[1]).abs().amax() > 0.2
