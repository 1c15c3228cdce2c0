"""SceneRenderer: batching, occlusion, soft-mode gradients, modes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from air3d.renderer import (
    Scene,
    SceneBatch,
    SceneObject,
    SceneRenderer,
    ShapeLibrary,
    World,
)

MIXED_SCENES = [
    Scene((SceneObject("cube", (-0.5, 0.3, 0.2), 15.0),)),
    Scene(),
    Scene(
        (
            SceneObject("sphere", (0.6, 0.35, -0.6), 0.0),
            SceneObject("cone", (-0.7, 0.3, 0.7), 0.0),
            SceneObject("cylinder", (0.3, 0.3, 0.8), 40.0),
        )
    ),
    Scene(
        (
            SceneObject("cylinder", (1.0, 0.3, 1.0), 5.0),
            SceneObject("cube", (-1.0, 0.3, -1.0), 80.0),
        )
    ),
]


def _covered(image: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
    """Pixels (H, W) where an image (3, H, W) visibly differs from the empty scene."""
    return ((image - empty).abs() > 0.02).any(0)


@pytest.mark.parametrize("mode", ["crisp", "soft"])
def test_batch_renders_like_scenes_one_by_one(renderer: SceneRenderer, mode: str) -> None:
    with torch.no_grad():
        batched = renderer.render_scenes(MIXED_SCENES, mode)
        alone = torch.cat([renderer.render_scenes([scene], mode) for scene in MIXED_SCENES])
    assert batched.shape == (len(MIXED_SCENES), 3, 64, 64)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)
    # The scenes differ from each other, so the comparison above could have caught a mix-up.
    assert (batched[0] - batched[2]).abs().max() > 0.1


def test_extra_empty_slots_change_nothing(renderer: SceneRenderer, shapes: ShapeLibrary) -> None:
    tight = SceneBatch.from_scenes(MIXED_SCENES, shapes)
    padded = SceneBatch.from_scenes(MIXED_SCENES, shapes, slots=6)
    assert padded.present.shape == (4, 6) and tight.present.shape == (4, 3)
    with torch.no_grad():
        torch.testing.assert_close(renderer(padded), renderer(tight), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["crisp", "soft"])
def test_empty_scenes(renderer: SceneRenderer, shapes: ShapeLibrary, mode: str) -> None:
    with torch.no_grad():
        images = renderer.render_scenes([Scene(), Scene()], mode)
        none = renderer(SceneBatch.from_scenes([], shapes), mode)
    torch.testing.assert_close(images[0], images[1])
    assert none.shape == (0, 3, 64, 64)


def test_soft_matches_crisp_away_from_edges(renderer: SceneRenderer) -> None:
    with torch.no_grad():
        crisp = renderer.render_scenes(MIXED_SCENES, "crisp")
        soft = renderer.render_scenes(MIXED_SCENES, "soft")
    difference = (soft - crisp).abs().amax(1)  # (B, H, W)
    assert difference.mean() < 0.01, "soft renders should only blur the edges"
    assert (difference > 0.05).float().mean() < 0.03


def test_unknown_mode_is_refused(renderer: SceneRenderer) -> None:
    with pytest.raises(ValueError, match="unknown render mode 'blurry'; known: crisp, soft"):
        renderer.render_scenes([Scene()], "blurry")  # type: ignore[arg-type]


def test_object_appears_where_the_scene_puts_it(renderer: SceneRenderer) -> None:
    """x grows to the right of the image, z towards the camera (down the image)."""
    with torch.no_grad():
        empty, left, right, near = renderer.render_scenes(
            [
                Scene(),
                Scene((SceneObject("cube", (-1.0, 0.3, 0.0), 0.0),)),
                Scene((SceneObject("cube", (1.0, 0.3, 0.0), 0.0),)),
                Scene((SceneObject("cube", (0.0, 0.3, 1.0), 0.0),)),
            ]
        )
    columns = torch.arange(64.0)

    def centre(image: torch.Tensor) -> tuple[float, float]:
        mask = _covered(image, empty).float()
        return float((mask.sum(1) * columns).sum() / mask.sum()), float(
            (mask.sum(0) * columns).sum() / mask.sum()
        )

    (left_row, left_col), (right_row, right_col) = centre(left), centre(right)
    near_row, _ = centre(near)
    assert left_col < 24 < 40 < right_col
    assert abs(left_row - right_row) < 2
    assert near_row > left_row + 8


def test_occluded_object_is_hidden(world: World, shapes: ShapeLibrary) -> None:
    """Seen from low down, a cylinder right behind a nearer cube is fully hidden."""
    camera = dataclasses.replace(world.camera, position=(0.0, 0.3, 5.0), look_at=(0.0, 0.3, 0.0))
    renderer = SceneRenderer(dataclasses.replace(world, camera=camera), shapes)
    cube = SceneObject("cube", (0.0, 0.3, 0.8), 0.0)
    cylinder = SceneObject("cylinder", (0.0, 0.3, -0.8), 0.0)
    scenes = [Scene((cube, cylinder)), Scene((cylinder, cube)), Scene((cube,)), Scene((cylinder,))]
    for mode in ("crisp", "soft"):
        with torch.no_grad():
            both, both_swapped, cube_only, cylinder_only = renderer.render_scenes(scenes, mode)
        green = cylinder_only[1] > cylinder_only[0] + 0.2  # the cylinder's colour is green
        assert green.sum() > 20, f"{mode}: the cylinder alone should be visible"
        torch.testing.assert_close(both, cube_only, atol=1e-4, rtol=0, msg=mode)
        torch.testing.assert_close(both_swapped, cube_only, atol=1e-4, rtol=0, msg=mode)


def test_nearer_object_wins_where_objects_overlap(renderer: SceneRenderer) -> None:
    """Shipped camera: a sphere partly behind a cube never shows through the cube."""
    cube = SceneObject("cube", (0.0, 0.3, 0.3), 0.0)
    sphere = SceneObject("sphere", (0.0, 0.35, -0.3), 0.0)
    with torch.no_grad():
        both, cube_only, sphere_only, empty = renderer.render_scenes(
            [Scene((sphere, cube)), Scene((cube,)), Scene((sphere,)), Scene()]
        )
    on_cube, on_sphere = _covered(cube_only, empty), _covered(sphere_only, empty)
    assert (on_cube & on_sphere).sum() > 10, "the test needs the two to overlap in the image"
    assert (both - cube_only).abs().amax(0)[on_cube].max() < 1e-6
    visible_sphere = on_sphere & ~on_cube
    assert (both - sphere_only).abs().amax(0)[visible_sphere].max() < 1e-6


def _cube_loss_setup(
    renderer: SceneRenderer, shapes: ShapeLibrary, shape: str
) -> tuple[SceneBatch, torch.Tensor]:
    truth = SceneBatch.from_scenes([Scene((SceneObject(shape, (0.1, 0.3, 0.05), 20.0),))], shapes)
    with torch.no_grad():
        target = renderer(truth, "crisp")
    return truth, target


@pytest.mark.parametrize(
    ("shape", "offset"),
    [
        ("cube", (0.04, -0.03, 0.10)),  # a cube, so that yaw changes the image
        ("cube", (-0.06, 0.04, -0.15)),
        ("cube", (0.06, 0.06, -0.10)),
        ("sphere", (0.05, 0.04, 0.0)),
    ],
)
def test_soft_gradients_agree_with_finite_differences(
    renderer: SceneRenderer, shapes: ShapeLibrary, shape: str, offset: tuple[float, float, float]
) -> None:
    """d loss / d (x, z, yaw) of a squared-error image loss, analytic vs central differences.

    The loss compares a soft render displaced from the truth with the crisp render of the
    truth; the step (1e-3 world units / radians, ~1/70 pixel) is well inside the soft
    edge (~1 pixel), so the loss is smooth on that scale. The soft loss still has rare
    small jumps (where a face enters the blur radius of a pixel that a nearer face
    dominates); the points here are generic ones away from them.
    """
    truth, target = _cube_loss_setup(renderer, shapes, shape)
    delta = torch.tensor(offset)

    def loss(d: torch.Tensor) -> torch.Tensor:
        xz = truth.xz + d[:2]
        yaw = truth.yaw + d[2]
        image = renderer(SceneBatch(truth.shape, truth.present, xz, yaw), "soft")
        return (image - target).pow(2).sum()

    params = delta.clone().requires_grad_(True)
    loss(params).backward()
    analytic = params.grad
    h = 1e-3
    with torch.no_grad():
        numeric = torch.stack(
            [(loss(delta + h * e) - loss(delta - h * e)) / (2 * h) for e in torch.eye(3)]
        )
    scale = numeric[:2].norm()
    assert scale > 1.0, "the position gradient should not vanish"
    assert (analytic - numeric).norm() <= 0.05 * numeric.norm(), f"{analytic} vs {numeric}"
    # Descending the gradient moves the object back towards the truth.
    assert torch.dot(analytic[:2], delta[:2]) > 0
    if shape == "cube":
        assert analytic[2].abs() > 0.5 and analytic[2] * delta[2] > 0


def test_gradients_reach_every_present_object_in_a_batch(
    renderer: SceneRenderer, shapes: ShapeLibrary
) -> None:
    batch = SceneBatch.from_scenes(MIXED_SCENES, shapes)
    xz = batch.xz.clone().requires_grad_(True)
    yaw = batch.yaw.clone().requires_grad_(True)
    images = renderer(SceneBatch(batch.shape, batch.present, xz, yaw), "soft")
    images.mean().backward()
    per_slot = xz.grad.abs().sum(-1)  # (B, N)
    assert (per_slot[batch.present] > 0).all()
    assert (per_slot[~batch.present] == 0).all()
    cubes = batch.present & (batch.shape == shapes.index("cube"))
    assert (yaw.grad[cubes].abs() > 0).all()


def test_crisp_and_soft_render_on_the_renderer_device(renderer: SceneRenderer) -> None:
    image = renderer.render_scenes(MIXED_SCENES[:1], "soft")
    assert image.device == renderer.device
    assert image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0


def _dense_soft(renderer: SceneRenderer, batch: SceneBatch) -> torch.Tensor:
    """The reference: PyTorch3D's blend over every pixel (B, 3, H, W), as soft mode did
    before it blended the covered pixels alone."""
    from pytorch3d.renderer.blending import BlendParams, softmax_rgb_blend

    from air3d.renderer.fragments import fragments
    from air3d.renderer.renderer import _silhouette

    meshes, objects = renderer.meshes(batch, ground=False), renderer.object_faces(batch)
    ndc = renderer.project(meshes)
    face_verts = ndc.verts_packed()[ndc.faces_packed()]
    pix_to_face = renderer.rasterize(ndc, objects, "soft")
    frags = fragments(face_verts, pix_to_face, clip_bary=True)
    colors = renderer.face_colors(meshes)[pix_to_face.clamp(min=0)]
    cam, soft = renderer.world.camera, renderer.world.rendering
    blend = BlendParams(soft.soft_sigma, soft.soft_gamma, renderer.appearance.background())
    rgb = softmax_rgb_blend(colors, frags, blend, cam.znear, cam.zfar)[..., :3]
    alpha = _silhouette(pix_to_face, frags.dists, renderer.world)
    image = alpha * rgb + (1.0 - alpha) * renderer.ground_image()
    return image.permute(0, 3, 1, 2).clamp(0.0, 1.0)


def test_soft_blends_covered_pixels_as_the_dense_blend_does(
    renderer: SceneRenderer, shapes: ShapeLibrary
) -> None:
    batch = SceneBatch.from_scenes(MIXED_SCENES, shapes)
    grads = []
    images = []
    for render in (lambda b: renderer(b, "soft"), lambda b: _dense_soft(renderer, b)):
        xz = batch.xz.clone().requires_grad_(True)
        yaw = batch.yaw.clone().requires_grad_(True)
        image = render(SceneBatch(batch.shape, batch.present, xz, yaw))
        (image * torch.linspace(0, 1, image.numel()).reshape(image.shape)).sum().backward()
        images.append(image.detach())
        grads.append(torch.cat([xz.grad.flatten(), yaw.grad.flatten()]))
    torch.testing.assert_close(images[0], images[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4 * grads[1].abs().max(), rtol=0)


@pytest.mark.parametrize("mode", ["crisp", "soft"])
def test_each_scene_is_drawn_from_its_own_camera(
    world: World, shapes: ShapeLibrary, renderer: SceneRenderer, mode: str
) -> None:
    """A scene's camera draws what a world with that camera draws, in a batch with scenes
    seen from other cameras; at the world camera's own position it changes nothing."""
    shadowed = dataclasses.replace(world, light=dataclasses.replace(world.light, shadow=0.5))
    eyes = [(2.2, 2.6, 2.4), None, tuple(world.camera.position), (-1.5, 3.5, 2.5)]
    scenes = [Scene(s.objects, eye) for s, eye in zip(MIXED_SCENES, eyes, strict=True)]
    drawn = SceneRenderer(shadowed, shapes)
    with torch.no_grad():
        batched = drawn.render_scenes(scenes, mode)
        for scene, image in zip(scenes, batched, strict=True):
            moved = dataclasses.replace(shadowed, camera=world.camera.moved_to(scene.camera))
            alone = SceneRenderer(moved, shapes).render_scenes([Scene(scene.objects)], mode)[0]
            torch.testing.assert_close(image, alone, atol=1e-5, rtol=0)
        fixed = drawn.render_scenes([Scene(s.objects) for s in scenes], mode)
    torch.testing.assert_close(batched[1:3], fixed[1:3], atol=1e-6, rtol=0)
    assert (batched[0] - fixed[0]).abs().amax() > 0.2  # the camera moved: another image
    assert (batched[3] - fixed[3]).abs().amax() > 0.2


def test_soft_gradients_reach_objects_seen_from_a_moved_camera(
    renderer: SceneRenderer, shapes: ShapeLibrary
) -> None:
    batch = SceneBatch.from_scenes([Scene(MIXED_SCENES[2].objects, (2.0, 2.5, 2.5))], shapes)
    xz = batch.xz.clone().requires_grad_(True)
    renderer(batch.with_slots(batch.shape, batch.present, xz, batch.yaw), "soft").sum().backward()
    assert (xz.grad[batch.present].abs().sum(-1) > 0).all()
