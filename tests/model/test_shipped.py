"""The shipped models: one per shipped world, and --world checked against a checkpoint."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from air3d.model import DEFAULT_CHECKPOINT, Predictor, choose_checkpoint, shipped_checkpoint
from air3d.model.calibration import read_calibration
from air3d.model.checkpoint import load_checkpoint
from air3d.model.shipped import MODELS_DIR, check_world
from air3d.renderer.shapes import ShapeLibrary, expand_kinds, load_shape_library
from air3d.renderer.world import World, load_world
from air3d.renderer.worlds import shipped_worlds, world_files


def test_each_shipped_world_has_its_model_path(tmp_path) -> None:
    assert shipped_checkpoint(None) == shipped_checkpoint("tabletop") == DEFAULT_CHECKPOINT
    assert shipped_checkpoint("clevr") == MODELS_DIR / "clevr.pt"
    assert choose_checkpoint(tmp_path / "m.pt", "clevr") == tmp_path / "m.pt"
    with pytest.raises(ValueError, match="world 'nowhere' ships no model; train one"):
        shipped_checkpoint("nowhere")


def test_world_must_be_the_checkpoints(tiny_clevr_checkpoint, tiny_clevr_world) -> None:
    world = Predictor.from_checkpoint(tiny_clevr_checkpoint, fit=False).world
    assert world.name == "tinyclevr"
    check_world(world, None, tiny_clevr_checkpoint)
    check_world(world, str(tiny_clevr_world), tiny_clevr_checkpoint)
    with pytest.raises(ValueError, match="is a model of world 'tinyclevr', not 'clevr': drop"):
        check_world(world, "clevr", tiny_clevr_checkpoint)


@pytest.mark.parametrize("name", shipped_worlds())
def test_each_shipped_model_was_trained_in_its_shipped_world(name: str) -> None:
    """A world's files and its model ship together: a model trained before the world changed
    (e.g. CLEVR's cube size, its camera jitter) would read every image through a wrong world."""
    checkpoint = load_checkpoint(shipped_checkpoint(name), "cpu")
    world_file, shapes_dir = world_files(name)
    trained = replace(World.from_dict(checkpoint["world"]), name=name).model_facing()
    assert trained.to_dict() == load_world(world_file).model_facing().to_dict()
    shipped_shapes = expand_kinds(load_shape_library(shapes_dir), load_world(world_file))
    # Round-tripped: checkpoints written before a shape field existed read it as its default.
    trained_shapes = ShapeLibrary.from_dict(checkpoint["shapes"])
    assert trained_shapes.to_dict()["shapes"] == shipped_shapes.to_dict()["shapes"]
    for trained, shipped in zip(trained_shapes.meshes, shipped_shapes.meshes, strict=True):
        assert np.array_equal(trained.faces, shipped.faces)
        assert np.allclose(trained.verts, shipped.verts, atol=1e-5)


@pytest.mark.parametrize("name", shipped_worlds())
def test_each_shipped_model_is_calibrated_for_its_weights_and_world(name: str) -> None:
    """A change of weights or world (e.g. its shading) voids the fit's calibration, and
    answers then say their fit is uncalibrated: a shipped model is calibrated again."""
    path = shipped_checkpoint(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning that says it was made for another model
        assert read_calibration(load_checkpoint(path, "cpu"), path) is not None
