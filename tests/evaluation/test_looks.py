"""A test set under other looks: every named look gives images of the right shape."""

from __future__ import annotations

import pytest
import torch

from air3d.evaluation.looks import images_under_look, look_names
from air3d.renderer import Scene, SceneObject, SceneRenderer


def test_every_look_redraws_or_changes_the_test_images(world, shapes):
    scenes = [Scene((SceneObject("cube", (0.3, 0.0, 0.2), 30.0),)), Scene(())]
    drawn = SceneRenderer(world, shapes).render_scenes(scenes, "crisp")
    images = (drawn * 255).round() / 255  # as read from a PNG
    names = look_names(world)
    assert names[0] == "clean" and {"srgb", "antialias-4x", "light-side"} <= set(names)
    for name in names:
        out = images_under_look(name, images, scenes, world, shapes)
        assert out.shape == images.shape, name
        assert torch.equal(out, (out * 255).round() / 255), f"{name} is not 8-bit"
        if name != "clean":
            assert not torch.equal(out, images), f"{name} changed nothing"


def test_an_unknown_look_is_named_with_the_known_ones(world, shapes):
    with pytest.raises(ValueError, match="unknown look 'sepia'; known: clean, srgb"):
        images_under_look("sepia", torch.zeros(1, 3, 64, 64), [Scene(())], world, shapes)
