"""A centre refiner that reads neighbours (model/centre_refiner.py): where each window's
other objects are, nearer and farther, from the truth in training and from the answer at
inference."""

from __future__ import annotations

import pytest
import torch

from air3d.commands.train_centres import _start_from
from air3d.model.augment import AugmentConfig
from air3d.model.centre_refiner import (
    CHECKPOINT_KEY,
    CentreRefiner,
    Neighbours,
    centre_heights,
    factor_sizes,
    fine_world,
    focal_pixels,
    neighbour_maps,
    others_in_image,
    sharpen_image_points,
)
from air3d.model.centre_training import (
    CentreTrainConfig,
    data_neighbours,
    held_out_miss,
    render_centre_data,
    train_centre_refiner,
)
from air3d.model.predictor import Predictor
from air3d.renderer import SceneBatch, SceneRenderer, open_world
from air3d.renderer.prior import sample_scenes

FINE = 64  # the tiny clevr world's canvas is 32: twice as fine


def test_each_object_knows_the_other_objects_of_its_image():
    others = others_in_image(torch.tensor([0, 0, 0, 2, 2, 3]))
    assert others.shape == (6, 3)
    listed = [sorted(i for i in row.tolist() if i >= 0) for row in others]
    assert listed == [[1, 2], [0, 2], [0, 1], [4], [3], []]
    assert others_in_image(torch.zeros(0, dtype=torch.long)).shape == (0, 0)
    with pytest.raises(ValueError, match="sorted by image"):
        others_in_image(torch.tensor([1, 0]))


def test_neighbour_maps_draw_nearer_and_farther_discs_apart():
    centres = torch.tensor([[20.0, 20.0], [20.0, 20.0]])
    # window 0: a nearer disc 5 px right of its centre, a farther one 5 px above;
    # window 1: the same two, the first left out (radius 0)
    points = torch.tensor([[[25.0, 20.0], [20.0, 15.0]]]).expand(2, 2, 2)
    radii = torch.tensor([[2.0, 3.0], [0.0, 3.0]])
    nearer = torch.tensor([[True, False], [True, False]])
    maps = neighbour_maps(centres, points, radii, nearer, 16)
    assert maps.shape == (2, 2, 16, 16)
    assert ((maps >= 0) & (maps <= 1)).all()
    # window pixel (row r, column c) is the image point centre + (c + 0.5 - 8, r + 0.5 - 8)
    assert maps[0, 0, 7, 12] == 1.0 and maps[0, 1, 7, 12] == 0.0  # (24.5, 19.5): nearer
    assert maps[0, 1, 2, 7] == 1.0 and maps[0, 0, 2, 7] == 0.0  # (19.5, 14.5): farther
    assert maps[0, :, 7, 7].sum() == 0.0  # the window's own centre: neither
    assert maps[0, 0].sum() == pytest.approx(torch.pi * 2.0**2, rel=0.25)  # a disc's area
    assert maps[1, 0].sum() == 0.0 and torch.equal(maps[1, 1], maps[0, 1])


def _refiners(neighbours: bool) -> tuple[CentreRefiner, CentreRefiner]:
    shared = dict(window=16, channels=(8, 8), reads_scale=True, factors=(3, 2), context=True)
    plain = CentreRefiner(FINE, **shared)
    torch.nn.init.normal_(plain.net[-1].weight, std=0.1)  # one that answers something
    return plain, CentreRefiner(FINE, **shared, neighbours=neighbours)


def test_a_refiner_that_reads_neighbours_starts_with_the_answers_of_one_that_did_not():
    plain, seeing = _refiners(neighbours=True)
    assert (plain.view_channels, seeing.view_channels) == (3, 5)
    _start_from(seeing, plain)
    images = torch.rand(2, 3, FINE, FINE)
    uv = torch.tensor([[0.5, -0.2], [-0.3, 0.1], [0.1, 0.4]])
    image_of = torch.tensor([0, 1, 1])
    neighbours = Neighbours.of_objects(image_of, torch.full((3,), 6.0), torch.tensor([9.0, 8, 10]))
    a, reading_a = sharpen_image_points(plain.eval(), images, image_of, uv)
    b, reading_b = sharpen_image_points(seeing.eval(), images, image_of, uv, neighbours=neighbours)
    # the same up to rounding (the zero-weighted maps change the order of the sums)
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(reading_a.factor_logits[0], reading_b.factor_logits[0], atol=1e-5)
    with pytest.raises(ValueError, match="pass the objects' Neighbours"):
        sharpen_image_points(seeing, images, image_of, uv)
    # once its first layer reads them, where the other objects are changes its answer
    torch.nn.init.normal_(seeing.net[0].weight)
    apart = Neighbours.of_objects(image_of, torch.full((3,), 0.0), torch.tensor([9.0, 8, 10]))
    _, reading_c = sharpen_image_points(seeing, images, image_of, uv, neighbours=apart)
    _, reading_d = sharpen_image_points(seeing, images, image_of, uv, neighbours=neighbours)
    assert torch.allclose(reading_c.offsets[0], reading_d.offsets[0])  # image 0: alone
    assert not torch.allclose(reading_c.offsets[1:], reading_d.offsets[1:])
    with pytest.raises(ValueError, match="reads more than this one"):
        _start_from(plain, seeing)


def test_training_with_neighbours_shows_the_truths_other_objects(tiny_clevr_world):
    world, shapes = open_world(tiny_clevr_world)
    data = render_centre_data(world, shapes, 16, seed=5, fine_size=FINE, looks=None, chunk=16)
    train, held_out = data.split(0.25)
    config = CentreTrainConfig(
        steps=3, batch_size=16, noise_px=3.0, max_noise_px=6.0,
        focal_px=focal_pixels(world, FINE),
        kind_heights=centre_heights(shapes),
        kind_radii=torch.as_tensor(shapes.apparent_radii, dtype=torch.float32),
    )  # fmt: skip
    config.augment = AugmentConfig(probability=0.0)
    seen = data_neighbours(train, config)
    # an object's depth and size follow from its log scale log(h / z) and its kind
    heights = centre_heights(shapes)[train.kinds]
    assert torch.allclose(seen.depths * train.log_scales.exp(), heights)
    assert bool((seen.radii > 1.0).all()) and bool((seen.radii < FINE / 2).all())
    refiner = CentreRefiner(
        FINE, window=16, channels=(8, 8), reads_scale=True, factors=factor_sizes(shapes),
        neighbours=True,
    )  # fmt: skip
    curve = train_centre_refiner(refiner, train, held_out, config, shapes.factor_index())
    assert curve[-1]["step"] == 3 and curve[-1]["pass2"] >= 0
    values = torch.as_tensor(shapes.factor_index())
    again = held_out_miss(refiner, held_out, config, values)  # the same draws: the same misses
    assert again["pass2"] == pytest.approx(curve[-1]["pass2"])
    with pytest.raises(ValueError, match="kind_heights and kind_radii"):
        unsized = CentreTrainConfig(steps=1)
        train_centre_refiner(refiner, train, held_out, unsized, shapes.factor_index())


def test_the_predictor_shows_each_object_the_answers_others(
    tiny_clevr_checkpoint, tiny_clevr_world, tmp_path, monkeypatch
):
    import air3d.model.predictor as predictor_module

    checkpoint = torch.load(tiny_clevr_checkpoint, weights_only=True)
    world, shapes = open_world(tiny_clevr_world)
    refiner = CentreRefiner(
        FINE, window=16, channels=(8, 8), hidden=16, factors=factor_sizes(shapes),
        neighbours=True,
    )  # fmt: skip
    checkpoint[CHECKPOINT_KEY] = refiner.state()
    path = tmp_path / "seeing.pt"
    torch.save(checkpoint, path)
    predictor = Predictor.from_checkpoint(path, frozen=False, fit=False)
    fine = fine_world(world, FINE)
    scenes = sample_scenes(fine, shapes, 3, 2, count=3)
    answer = SceneBatch.from_scenes(scenes, shapes, world.max_objects)
    images = SceneRenderer(fine, shapes).render_scenes(scenes)
    shown = []
    sharpen = predictor_module.sharpen_image_points

    def spy(*args, neighbours=None, **kwargs):
        shown.append(neighbours)
        return sharpen(*args, neighbours=neighbours, **kwargs)

    monkeypatch.setattr(predictor_module, "sharpen_image_points", spy)
    uniform = torch.full((*answer.present.shape, len(shapes)), 1.0 / len(shapes))
    predictor._read_centres(images, answer, uniform)
    (neighbours,) = shown
    assert neighbours.others.shape == (9, 3)  # 3 images of 3 objects: 2 others each
    assert ((neighbours.others >= 0).sum(1) == 2).all()
    # sizes and depths from the answer's kinds and camera: the farther, the smaller
    assert ((neighbours.radii > 0.5) & (neighbours.radii < FINE / 4)).all()
    heights = centre_heights(shapes)[answer.shape[answer.present]]
    size = torch.as_tensor(shapes.apparent_radii, dtype=torch.float32)[answer.shape[answer.present]]
    near = neighbours.radii * neighbours.depths / size  # the focal length, for every object
    assert torch.allclose(near, torch.full_like(near, focal_pixels(world, FINE)), rtol=1e-4)
    assert (neighbours.depths > heights).all()
