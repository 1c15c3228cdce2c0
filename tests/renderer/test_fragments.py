"""The fast paths against PyTorch3D's own: fragments, soft images and gradients, crisp images.

The reference is PyTorch3D end to end, as the renderer used it before: MeshRasterizer
(with its autograd backward) plus SoftPhongShader / HardPhongShader on the same meshes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch3d.renderer import (
    BlendParams,
    DirectionalLights,
    HardPhongShader,
    Materials,
    MeshRasterizer,
    MeshRenderer,
    RasterizationSettings,
    SoftPhongShader,
)
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes

from air3d.renderer import Scene, SceneBatch, SceneObject, SceneRenderer, ShapeLibrary, World
from air3d.renderer.fragments import fragments
from air3d.renderer.prior import sample_scene
from air3d.renderer.renderer import _silhouette


@pytest.fixture(scope="module")
def batch(world: World, shapes: ShapeLibrary) -> SceneBatch:
    rng = np.random.default_rng(3)
    scenes = [sample_scene(world, shapes, rng, count=k % 4) for k in range(8)]
    return SceneBatch.from_scenes(scenes, shapes)


def _reference(renderer: SceneRenderer, mode: str) -> MeshRenderer:
    world, light = renderer.world, renderer.world.light
    lights = DirectionalLights(
        direction=(light.direction,),
        ambient_color=((light.ambient,) * 3,),
        diffuse_color=((light.diffuse,) * 3,),
        specular_color=((light.specular,) * 3,),
    )
    materials = Materials(shininess=1.0)
    size = world.image_size
    if mode == "crisp":
        settings = RasterizationSettings(image_size=size, faces_per_pixel=1, bin_size=0)
        blend = BlendParams(background_color=world.background)
        shader = HardPhongShader("cpu", renderer.cameras, lights, materials, blend)
    else:
        soft = world.rendering
        settings = RasterizationSettings(
            image_size=size, blur_radius=renderer._blur, faces_per_pixel=soft.soft_faces_per_pixel,
            bin_size=0, perspective_correct=False, cull_backfaces=True,
        )  # fmt: skip
        blend = BlendParams(soft.soft_sigma, soft.soft_gamma, world.background)
        shader = SoftPhongShader("cpu", renderer.cameras, lights, materials, blend)
    return MeshRenderer(MeshRasterizer(renderer.cameras, settings), shader)


def _reference_image(renderer: SceneRenderer, batch: SceneBatch, mode: str) -> torch.Tensor:
    reference = _reference(renderer, mode)
    if mode == "crisp":  # the ground as geometry, as PyTorch3D would draw it
        return reference(renderer.meshes(batch))[..., :3].permute(0, 3, 1, 2).clamp(0, 1)
    meshes = renderer.meshes(batch, ground=False)
    frags = reference.rasterizer(meshes)
    rgb = reference.shader(frags, meshes)[..., :3]
    alpha = _silhouette(frags.pix_to_face, frags.dists, renderer.world)
    image = alpha * rgb + (1 - alpha) * renderer.ground_image()
    return image.permute(0, 3, 1, 2).clamp(0, 1)


def test_fragments_match_pytorch3d_rasteriser(renderer: SceneRenderer, batch: SceneBatch) -> None:
    ndc = renderer.project(renderer.meshes(batch, ground=False))
    face_verts = ndc.verts_packed()[ndc.faces_packed()]
    soft = renderer.world.rendering
    pix_to_face, zbuf, bary, dists = rasterize_meshes(
        ndc, image_size=renderer.world.image_size, blur_radius=renderer._blur,
        faces_per_pixel=soft.soft_faces_per_pixel, bin_size=0, perspective_correct=False,
        clip_barycentric_coords=True, cull_backfaces=True,
    )  # fmt: skip
    ours = fragments(face_verts, pix_to_face, clip_bary=True)
    assert (pix_to_face >= 0).sum() > 1000  # enough covered fragments to compare
    torch.testing.assert_close(ours.zbuf, zbuf, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.bary_coords, bary, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.dists, dists, atol=1e-7, rtol=0)
    assert ((ours.dists < 0) == (dists < 0)).all()  # inside / outside agree exactly


@pytest.mark.parametrize("mode", ["crisp", "soft"])
def test_images_and_gradients_match_pytorch3d(
    renderer: SceneRenderer, batch: SceneBatch, mode: str
) -> None:
    weights = torch.linspace(-1.0, 1.0, 3 * 64 * 64).reshape(3, 64, 64)  # a generic loss
    grads, images = [], []
    for render in (renderer.forward, lambda b, m: _reference_image(renderer, b, m)):
        xz = batch.xz.clone().requires_grad_(True)
        yaw = batch.yaw.clone().requires_grad_(True)
        image = render(SceneBatch(batch.shape, batch.present, xz, yaw), mode)
        (image * weights).sum().backward()
        images.append(image.detach())
        grads.append(torch.cat([xz.grad, yaw.grad[..., None]], -1)[batch.present])  # (n, 3)
    torch.testing.assert_close(images[0], images[1], atol=1e-5, rtol=0)
    scale = grads[1].abs().max()
    assert scale > 1.0  # the comparison below could fail
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4 * scale.item(), rtol=0)


@pytest.mark.parametrize("mode", ["crisp", "soft"])
def test_windowed_rasterisation_picks_pytorch3d_faces(
    renderer: SceneRenderer, batch: SceneBatch, shapes: ShapeLibrary, mode: str
) -> None:
    """Each object rasterised alone in its window, then merged: the same faces, in the same
    order, as PyTorch3D rasterising whole scenes (here with objects that overlap on screen)."""
    crowded = SceneBatch.from_scenes(
        [Scene((SceneObject("sphere", (0.0, 0.35, 0.0), 0.0),
                SceneObject("cube", (0.3, 0.3, 0.5), 30.0),
                SceneObject("cylinder", (-0.3, 0.3, 0.6), 0.0)))],
        shapes,
    )  # fmt: skip
    for scenes in (batch, crowded):
        ndc = renderer.project(renderer.meshes(scenes, ground=False))
        ours = renderer.rasterize(ndc, renderer.object_faces(scenes), mode)
        soft = mode == "soft"
        whole, _, _, _ = rasterize_meshes(
            ndc, image_size=renderer.world.image_size, blur_radius=renderer._blur if soft else 0.0,
            faces_per_pixel=renderer.world.rendering.soft_faces_per_pixel if soft else 1,
            bin_size=0, perspective_correct=False, clip_barycentric_coords=soft,
            cull_backfaces=soft,
        )  # fmt: skip
        assert (whole >= 0).sum() > 100
        # the same faces at every pixel; in the same order but where two tie in depth
        assert torch.equal(ours.sort(-1).values, whole.sort(-1).values)
        assert (ours == whole).float().mean() > 0.999
        assert ((ours >= 0) == (whole >= 0)).all()
