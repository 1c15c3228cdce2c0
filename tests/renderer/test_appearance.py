"""The learnable appearance θ: round trip to config, gradients, tone curve."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from air3d.renderer import Scene, SceneBatch, SceneObject, SceneRenderer
from air3d.renderer.appearance import GROUPS, Appearance
from air3d.renderer.world import ToneConfig, World

SCENE = Scene(
    (
        SceneObject("cube", (-0.5, 0.3, 0.0), 20.0),
        SceneObject("sphere", (0.6, 0.35, 0.3), 0.0),
    )
)


def test_config_round_trip_is_the_identity(world: World, shapes) -> None:
    back_world, back_shapes = Appearance(world, shapes).to_config(world, shapes)
    assert back_world.light.ambient == pytest.approx(world.light.ambient, abs=1e-5)
    assert back_world.ground.color == pytest.approx(world.ground.color, abs=1e-5)
    assert back_world.background == pytest.approx(world.background, abs=1e-5)
    assert back_world.tone == ToneConfig(1.0, 1.0) and back_world.light.shadow == 0.0
    for ours, theirs in zip(back_shapes.specs, shapes.specs, strict=True):
        assert ours.color == pytest.approx(theirs.color, abs=1e-5)
    assert World.from_dict(back_world.to_dict()) == back_world


def test_frozen_until_learned(world: World, shapes) -> None:
    look = Appearance(world, shapes)
    assert not any(p.requires_grad for p in look.parameters())
    params = look.learn(["colors", "tone"])
    assert {id(p) for p in params} == {id(look.object_logits), id(look.log_exposure),
                                       id(look.log_gamma)}  # fmt: skip
    with pytest.raises(ValueError, match="unknown appearance groups \\['fog'\\]; known"):
        look.learn(["fog"])


@pytest.mark.parametrize("mode", ["crisp", "soft"])
def test_gradients_reach_every_group(renderer: SceneRenderer, shapes, mode) -> None:
    renderer = SceneRenderer(renderer.world, shapes)
    params = renderer.appearance.learn(list(GROUPS))
    image = renderer(SceneBatch.from_scenes([SCENE], shapes), mode)
    image.square().sum().backward()
    for name, param in renderer.appearance.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert len(params) == len(list(renderer.appearance.parameters()))


def test_tone_curve_is_applied(world: World, shapes) -> None:
    linear = SceneRenderer(world, shapes).render_scenes([SCENE])
    toned_world = dataclasses.replace(world, tone=ToneConfig(exposure=1.2, gamma=2.2))
    toned = SceneRenderer(toned_world, shapes).render_scenes([SCENE])
    expected = (linear * 1.2).clamp(1e-6, 1.0) ** (1 / 2.2)
    assert torch.allclose(toned, expected, atol=1e-5)


def test_learned_colours_are_rendered(world: World, shapes) -> None:
    look = Appearance(world, shapes)
    with torch.no_grad():
        look.ground_logit.fill_(0.0)  # grey 0.5
    new_world, new_shapes = look.to_config(world, shapes)
    image = SceneRenderer(new_world, new_shapes).render_scenes([Scene()])[0]
    # the ground faces up: lit by ambient + diffuse * (its normal . the light direction)
    up = torch.nn.functional.normalize(torch.tensor(world.light.direction), dim=0)[1]
    shade = 0.5 * (world.light.ambient + world.light.diffuse * float(up))
    centre = image[:, world.image_size // 2, world.image_size // 2]
    assert torch.allclose(centre, torch.full((3,), shade), atol=1e-4)


def test_cast_shadows_darken_the_table_away_from_the_light(world: World, shapes) -> None:
    lit_world = dataclasses.replace(world, light=dataclasses.replace(world.light, shadow=1.0))
    scene = Scene((SceneObject("cube", (0.0, 0.3, 0.0), 0.0),))
    with torch.no_grad():
        plain = SceneRenderer(world, shapes).render_scenes([scene, Scene()])
        shadowed = SceneRenderer(lit_world, shapes).render_scenes([scene, Scene()])
    assert torch.equal(shadowed[1], plain[1])  # no object, no shadow
    darker = (plain[0] - shadowed[0]).amax(0) > 0.05  # (H, W)
    assert darker.sum() >= 5
    # the light comes from +x (image right): the shadow falls left of the cube's centre
    rows, cols = darker.nonzero().unbind(1)
    centre_col = world.image_size // 2
    assert cols.float().mean() < centre_col
    # only the diffuse part is lost: the darkest shadow keeps the table's ambient light
    table = torch.tensor(world.ground.color) * world.light.ambient
    assert (shadowed[0][:, rows, cols] >= table[:, None] - 2e-3).all()
