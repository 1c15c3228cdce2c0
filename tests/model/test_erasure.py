"""Erasing what was found leaves a scene of what is left, in the input's own ground colour."""

from __future__ import annotations

import pytest
import torch

from air3d.model.erasure import distinct, erase_found, new_objects, supported
from air3d.renderer import Scene, SceneBatch, SceneObject, SceneRenderer


@pytest.fixture(scope="module")
def renderer(world, shapes) -> SceneRenderer:
    return SceneRenderer(world, shapes)


def _batch(shapes, *objects: tuple[str, float, float], slots: int = 3) -> SceneBatch:
    scene = Scene(tuple(SceneObject(s, (x, 0.0, z), 30.0) for s, x, z in objects))
    return SceneBatch.from_scenes([scene], shapes, slots)


def _draw(renderer: SceneRenderer, batch: SceneBatch) -> torch.Tensor:
    with torch.no_grad():
        return renderer(batch, "crisp")


def test_erasing_found_objects_leaves_the_rest(shapes, renderer):
    both = _draw(renderer, _batch(shapes, ("cube", -0.6, 0.0), ("sphere", 0.6, 0.3)))
    rest = _draw(renderer, _batch(shapes, ("sphere", 0.6, 0.3)))
    found = _batch(shapes, ("cube", -0.6, 0.0))
    erased, _, drawn = erase_found(both, found, renderer)
    assert (erased - rest).abs().max() < 1e-4  # the cube is gone, the sphere untouched
    assert (drawn - _draw(renderer, found)).abs().max() == 0  # what was found, drawn
    assert (both - rest).abs().max() > 0.1  # (it was there)


def test_the_fill_takes_the_inputs_own_ground_colour(shapes, renderer):
    image = _draw(renderer, _batch(shapes, ("cube", 0.0, 0.0)))
    tinted = (image * torch.tensor([1.2, 0.9, 0.7])[:, None, None]).clamp(0, 1)
    erased, fill, _ = erase_found(tinted, _batch(shapes, ("cube", 0.0, 0.0)), renderer)
    empty = _draw(renderer, _batch(shapes))
    expected = (empty * torch.tensor([1.2, 0.9, 0.7])[:, None, None]).clamp(0, 1)
    assert (erased - expected).abs().max() < 0.02
    assert (fill - expected).abs().max() < 0.02


def test_a_candidate_on_a_found_object_is_not_new(shapes):
    found = _batch(shapes, ("cube", 0.0, 0.0))
    candidates = _batch(shapes, ("cube", 0.1, 0.05), ("sphere", 0.9, 0.0))
    assert new_objects(found, candidates, 0.375).tolist() == [[False, True, False]]


def test_only_candidates_on_non_ground_pixels_are_supported(shapes, renderer):
    image = _draw(renderer, _batch(shapes, ("sphere", 0.6, 0.3)))
    erased, fill, _ = erase_found(image, _batch(shapes), renderer)  # nothing found yet
    candidates = _batch(shapes, ("sphere", 0.6, 0.3), ("cube", -0.6, -0.4))
    assert supported(erased, fill, candidates, renderer).tolist() == [[True, False, False]]


def test_distinct_drops_a_step_that_repeats_an_earlier_object() -> None:
    xz = torch.tensor([[[0.0, 0.0], [0.1, 0.0], [1.0, 0.0], [1.05, 0.05]]])
    answer = SceneBatch(
        torch.zeros(1, 4, dtype=torch.long), torch.tensor([[True, True, True, False]]),
        xz, torch.zeros(1, 4),
    )  # fmt: skip
    assert distinct(answer, 0.3).tolist() == [[True, False, True, False]]
    assert distinct(answer, 0.0).tolist() == answer.present.tolist()
    assert distinct(answer, 2.0).tolist() == [[True, False, False, False]]
