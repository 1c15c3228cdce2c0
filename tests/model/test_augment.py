"""Looks: each changes the image and stays in range, chains are reproducible, lights vary."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from air3d.model.augment import LOOKS, AugmentConfig, augment, random_light, srgb
from air3d.model.scene_pool import ScenePool
from air3d.renderer import SceneRenderer


def _images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(4, 3, 16, 16) * 0.8 + 0.1


@pytest.mark.parametrize("name", list(LOOKS))
def test_every_look_changes_the_image_and_keeps_it_in_range(name):
    images = _images()
    out = LOOKS[name](images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert (out - images).abs().mean() > 1e-3, f"{name} left the images as they were"


def test_srgb_is_the_standard_curve():
    x = torch.tensor([0.0, 0.002, 0.18, 1.0]).view(1, 1, 4, 1).expand(1, 3, 4, 1)
    expected = [0.0, 12.92 * 0.002, 1.055 * 0.18 ** (1 / 2.4) - 0.055, 1.0]
    assert srgb(x)[0, 0, :, 0].tolist() == pytest.approx(expected, abs=1e-5)


def test_augment_is_off_at_probability_zero_and_reproducible_otherwise():
    images = _images()
    off = augment(images, AugmentConfig(), torch.Generator().manual_seed(1))
    assert torch.equal(off, images)
    config = AugmentConfig(probability=1.0, look_probability=1.0)
    a = augment(images, config, torch.Generator().manual_seed(1))
    b = augment(images, config, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, images)
    assert a.min() >= 0 and a.max() <= 1
    half = augment(images, AugmentConfig(probability=0.5), torch.Generator().manual_seed(3))
    unchanged = [torch.equal(half[i], images[i]) for i in range(len(images))]
    assert any(unchanged) or not all(unchanged)  # per image, not all or nothing


def test_augment_config_refuses_bad_settings():
    with pytest.raises(ValueError, match="probability must be in"):
        AugmentConfig(probability=1.5)
    with pytest.raises(ValueError, match="unknown augment config keys"):
        AugmentConfig.from_dict({"strenght": 1.0})


def test_random_lights_stay_above_the_ground_and_vary(world):
    generator = torch.Generator().manual_seed(0)
    lights = [random_light(world.light, generator) for _ in range(50)]
    for light in lights:
        norm = math.sqrt(sum(c * c for c in light.direction))
        elevation = math.degrees(math.asin(light.direction[1] / norm))
        assert elevation >= 20 - 1e-6 and light.ambient > 0 and light.diffuse > 0
    assert len({light.direction for light in lights}) == 50


def test_a_lit_pool_draws_the_same_scenes_under_other_lights(world, shapes):
    renderer = SceneRenderer(world, shapes)
    plain = ScenePool.sample(8, 5, world, shapes, renderer)
    looks = AugmentConfig(light_probability=1.0, light_chunk=4)
    lit = ScenePool.sample(8, 5, world, shapes, renderer, looks)
    assert torch.equal(plain.latents.xz, lit.latents.xz)
    assert not torch.equal(plain.images[:4], lit.images[:4])
    assert not torch.equal(plain.images[4:], lit.images[4:])


def test_random_looks_vary_and_stay_in_their_ranges():
    from air3d.model.augment import LOOK_RANGES, random_look
    from air3d.renderer import open_world

    world, shapes = open_world("clevr")
    generator = torch.Generator().manual_seed(0)
    looks = [random_look(world, shapes, generator) for _ in range(40)]
    same, same_shapes = random_look(world, shapes, generator, strength=0.0)
    assert same == world and same_shapes == shapes  # strength 0: the world's own look
    offset = LOOK_RANGES["lamp_offset"]
    for looked, looked_shapes in looks:
        assert looked.camera == world.camera and looked.prior == world.prior
        for lamp, base in zip(looked.shading.lamps, world.shading.lamps, strict=True):
            assert all(
                abs(a - b) <= offset + 1e-6
                for a, b in zip(lamp.position, base.position, strict=True)
            )
            ratio = lamp.intensity / base.intensity
            assert (
                1 / LOOK_RANGES["lamp_factor"] - 1e-6 <= ratio <= LOOK_RANGES["lamp_factor"] + 1e-6
            )
            assert LOOK_RANGES["shadow"][0] - 1e-6 <= lamp.shadow <= 1.0
        low, high = LOOK_RANGES["shadow_blur"]
        assert low <= looked.shading.shadow_blur <= high
        assert abs(looked.tone.gamma - world.tone.gamma) <= LOOK_RANGES["gamma"] + 1e-6
        assert all(0 <= c <= 1 for c in (*looked.ground.color, *looked.background))
        assert all(0 <= c <= 1 for spec in looked_shapes.specs for c in spec.mirror)
    assert len({looked.shading.lamps[0].position for looked, _ in looks}) == 40
    assert len({looked.tone.exposure for looked, _ in looks}) == 40


def test_a_world_without_lamps_gets_random_lights(world, shapes):
    from air3d.model.augment import random_look

    looked, _ = random_look(world, shapes, torch.Generator().manual_seed(0))
    assert looked.shading is None and looked.light.direction != world.light.direction


def test_scene_looks_are_off_by_default_and_vary_the_pool_when_on():
    from air3d.renderer import open_world

    world, shapes = open_world("clevr")
    world = dataclasses.replace(world, image_size=32)
    renderer = SceneRenderer(world, shapes)
    plain = ScenePool.sample(8, 5, world, shapes, renderer)
    off = ScenePool.sample(8, 5, world, shapes, renderer, AugmentConfig())
    assert torch.equal(plain.images, off.images)  # the default changes nothing
    looks = AugmentConfig(scene_look_probability=1.0, scene_look_chunk=2)
    looked = ScenePool.sample(8, 5, world, shapes, renderer, looks)
    assert torch.equal(plain.latents.xz, looked.latents.xz)
    for start in range(0, 8, 2):  # every chunk under its own look
        assert not torch.equal(plain.images[start : start + 2], looked.images[start : start + 2])
    again = ScenePool.sample(8, 5, world, shapes, renderer, looks)
    assert torch.equal(looked.images, again.images)  # drawn from the seed: reproducible
    # a look changes the image, not the scene: it stays near the plain render
    gap = (looked.images.float() - plain.images.float()).abs().mean() / 255
    assert 0.005 < gap < 0.2
