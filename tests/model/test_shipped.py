"""The shipped models: one per shipped world, and --world checked against a checkpoint."""

from __future__ import annotations

import pytest

from air3d.model import DEFAULT_CHECKPOINT, Predictor, choose_checkpoint, shipped_checkpoint
from air3d.model.shipped import MODELS_DIR, check_world


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
