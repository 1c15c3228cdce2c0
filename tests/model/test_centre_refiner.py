"""The centre refiner (model/centre_refiner.py, model/centre_training.py): windows at the
input's own resolution, the geometry that reads a sharpened image point back onto the
object's plane, its training, and the Predictor that uses it on a finer canvas."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from air3d.images import Canvas, resize_canvas, to_canvas, to_pil
from air3d.model.augment import AugmentConfig
from air3d.model.centre_refiner import (
    CHECKPOINT_KEY,
    CentreRefiner,
    factor_sizes,
    fine_world,
    kind_posterior,
    sharpen_image_points,
    to_pixel_points,
    window_pixels,
)
from air3d.model.centre_training import (
    CentreData,
    CentreTrainConfig,
    contact_shadows,
    draw_objects,
    held_out_miss,
    noisy_windows,
    object_targets,
    render_centre_data,
    train_centre_refiner,
    training_loss,
)
from air3d.model.networks import extract_glimpses
from air3d.model.predictor import Predictor
from air3d.renderer import SceneBatch, SceneRenderer, ShapeLibrary, open_world
from air3d.renderer.camera import project, projection_matrices, unproject_to_plane
from air3d.renderer.prior import sample_scenes

FINE = 64  # the tiny clevr world's canvas is 32: twice as fine


def test_windows_equal_the_glimpses_of_q_and_read_uint8_stores():
    images = torch.rand(3, 3, 40, 40)
    uv = torch.rand(6, 2) * 1.6 - 0.8
    image_of = torch.tensor([0, 2, 1, 1, 0, 2])
    glimpses = extract_glimpses(images[image_of], uv, 8)
    windows = window_pixels(images, image_of, to_pixel_points(uv, 40), 8)
    assert torch.allclose(windows, glimpses, atol=1e-5)
    stored = (images * 255).round().to(torch.uint8)
    from_bytes = window_pixels(stored, image_of, to_pixel_points(uv, 40), 8)
    assert from_bytes.dtype == torch.float32
    assert torch.allclose(from_bytes, glimpses, atol=0.5 / 255 + 1e-5)


def test_an_untrained_refiner_keeps_the_centres_and_answers_its_reference_scale():
    refiner = CentreRefiner(FINE, window=16, channels=(8, 8), reads_scale=True, scale_reference=-3)
    uv = torch.tensor([[0.5, -0.2], [-0.3, 0.1], [0.1, 0.4]])
    images = torch.rand(2, 3, FINE, FINE)
    out, reading = sharpen_image_points(refiner, images, torch.tensor([0, 1, 1]), uv)
    assert torch.allclose(out, uv, atol=1e-5)
    assert torch.equal(reading.log_scale, torch.full((3,), -3.0))
    assert reading.factor_logits == ()
    plain = CentreRefiner(FINE, window=16, channels=(8, 8))
    assert sharpen_image_points(plain, images, torch.tensor([0, 1, 1]), uv)[1].log_scale is None
    naming = CentreRefiner(FINE, window=16, channels=(8, 8), factors=(3, 2))
    _, reading = sharpen_image_points(naming, images, torch.tensor([0, 1, 1]), uv)
    assert [tuple(x.shape) for x in reading.factor_logits] == [(3, 3), (3, 2)]
    assert all((x == 0).all() for x in reading.factor_logits)  # uniform: it keeps q's kinds
    _, none = sharpen_image_points(naming, images, torch.tensor([], dtype=torch.long), uv[:0])
    assert [tuple(x.shape) for x in none.factor_logits] == [(0, 3), (0, 2)]
    with pytest.raises(ValueError, match="reads 64-px canvases"):
        sharpen_image_points(plain, images[..., :32, :32], torch.tensor([0]), uv[:1])


def test_a_refiner_with_context_starts_from_one_without_it_with_the_same_answers():
    from air3d.commands.train_centres import _start_from

    plain = CentreRefiner(FINE, window=16, channels=(8, 8), reads_scale=True, factors=(3, 2))
    torch.nn.init.normal_(plain.net[-1].weight, std=0.1)  # one that answers something
    wide = CentreRefiner(
        FINE, window=16, channels=(8, 8), reads_scale=True, factors=(3, 2), context=True
    )
    assert (plain.span, wide.span) == (16, 32)
    _start_from(wide, plain)
    images = torch.rand(2, 3, FINE, FINE)
    uv = torch.tensor([[0.5, -0.2], [-0.3, 0.1], [0.1, 0.4]])
    image_of = torch.tensor([0, 1, 1])
    a, reading_a = sharpen_image_points(plain.eval(), images, image_of, uv)
    b, reading_b = sharpen_image_points(wide.eval(), images, image_of, uv)
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(reading_a.factor_logits[0], reading_b.factor_logits[0], atol=1e-6)
    # and what lies beyond the window, within the span, reaches a trained context's answer
    torch.nn.init.normal_(wide.net[0].weight)
    centre, one = torch.zeros(1, 2), torch.tensor([0])  # pixel (32, 32): window 24-40
    ring = images[:1].clone()
    ring[..., 16:48, 16:48] = 0.0  # inside the 32-px span
    ring[..., 24:40, 24:40] = images[:1, :, 24:40, 24:40]  # the 16-px window as it was
    point = to_pixel_points(centre, FINE)
    for refiner, changes in ((plain, False), (wide, True)):
        before = refiner(window_pixels(images[:1], one, point, refiner.span))
        after = refiner(window_pixels(ring, one, point, refiner.span))
        assert torch.allclose(before.offsets, after.offsets, atol=1e-6) != changes


def test_a_moved_image_point_is_read_back_on_the_objects_plane(world):
    matrix = projection_matrices(world, torch.tensor([world.camera.position]))[0]
    centre = torch.tensor([[0.4, 0.35, -0.8]])
    uv = project(centre, matrix)
    assert torch.allclose(unproject_to_plane(uv, matrix, 0.35), centre[:, [0, 2]], atol=1e-4)


@pytest.fixture(scope="module")
def centre_data(tiny_clevr_world) -> CentreData:
    world, shapes = open_world(tiny_clevr_world)
    return render_centre_data(world, shapes, 24, seed=3, fine_size=FINE, looks=None, chunk=12)


def test_the_data_points_are_where_the_renderer_draws_each_object(tiny_clevr_world, centre_data):
    """Each object's point lies on its own pixels: the rendered image differs there from
    the same scene drawn without that object."""
    world, shapes = open_world(tiny_clevr_world)
    scenes = sample_scenes(world, shapes, 1, 0)
    latents = SceneBatch.from_scenes(scenes, shapes, world.max_objects)
    image_of, points, log_scales, kinds = object_targets(world, shapes, latents, FINE)
    assert len(points) == len(log_scales) == len(scenes[0].objects)
    assert kinds.tolist() == [shapes.index(o.shape, dict(o.attributes)) for o in scenes[0].objects]
    # log(h / z): centre heights 0.35-0.7 seen from about 11 away
    assert ((log_scales > -3.8) & (log_scales < -2.3)).all()
    assert len(centre_data.log_scales) == len(centre_data.points) == len(centre_data.kinds)
    assert len(centre_data.hidden) == len(centre_data.points)
    assert bool(((centre_data.hidden >= 0) & (centre_data.hidden <= 1)).all())
    assert len(centre_data.image_of) == len(centre_data.points) > 24
    assert centre_data.images.dtype == torch.uint8
    rows = fine_world(world, FINE).frame_rows
    assert centre_data.images.shape[1:] == (3, rows[1] - rows[0], FINE)
    assert (centre_data.points[:, 1] >= 0).all()
    assert (centre_data.points[:, 1] < rows[1] - rows[0]).all()


def test_training_brings_windows_nearer_the_true_centres(tiny_clevr_world, centre_data):
    _, shapes = open_world(tiny_clevr_world)
    train, held_out = centre_data.split(0.25)
    config = CentreTrainConfig(steps=150, batch_size=32, lr=3e-3, noise_px=3.0, max_noise_px=6.0)
    config.augment = AugmentConfig(probability=0.0)
    reference = float(train.log_scales.mean())
    refiner = CentreRefiner(
        FINE,
        window=16,
        channels=(8, 16),
        hidden=32,
        reads_scale=True,
        scale_reference=reference,
        factors=factor_sizes(shapes),
    )
    values = torch.as_tensor(shapes.factor_index())
    before = held_out_miss(refiner, train, config, values)
    assert before["pass1"] == pytest.approx(before["before"])  # it starts by keeping them
    curve = train_centre_refiner(refiner, train, held_out, config, shapes.factor_index())
    after = held_out_miss(refiner, train, config, values)
    assert after["pass1"] < 0.8 * before["before"]
    assert after["scale_std"] < 0.8 * before["scale_std"]  # it tells small from large
    # it names the kinds: cross-entropies below a uniform guess's (the sizes, which differ
    # by twice, well below; at 64 px, 150 steps, the shapes are barely begun)
    with torch.no_grad():
        reading = refiner(window_pixels(train.images, train.image_of, train.points, 16))
    entropy, uniform = {}, {}
    for a, logits in enumerate(reading.factor_logits):
        name = shapes.factors[a][0]
        entropy[name] = float(nn.functional.cross_entropy(logits, values[train.kinds, a]))
        uniform[name] = math.log(logits.shape[1])
    assert entropy["size"] < 0.5 * uniform["size"]
    assert sum(entropy.values()) < 0.85 * sum(uniform.values())
    assert 0 <= after["factor0_accuracy"] <= 1
    assert curve[-1]["step"] == 150
    assert refiner.scale_noise == curve[-1]["scale_std"]  # the camera fit's noise
    with pytest.raises(ValueError, match="needs the library's factor_index"):
        train_centre_refiner(refiner, train, held_out, config)


def test_objects_are_drawn_favouring_the_hidden_ones_only_when_asked():
    m = 100
    hidden = torch.cat([torch.zeros(90), torch.ones(10)])  # the last ten out of sight
    data = CentreData(
        torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(m).long(), torch.zeros(m, 2),
        torch.zeros(m), torch.zeros(m).long(), hidden,
    )  # fmt: skip
    g = torch.Generator().manual_seed(0)

    def share_hidden(favour: float) -> float:
        config = CentreTrainConfig(batch_size=4000, favour_hidden=favour)
        return float((draw_objects(data, config, g) >= 90).float().mean())

    assert share_hidden(0.0) == pytest.approx(0.10, abs=0.02)
    assert share_hidden(9.0) == pytest.approx(100 / 190, abs=0.03)  # weights 10 against 1


def test_read_noise_trains_scale_and_kinds_on_the_near_windows_only(tiny_clevr_world):
    _, shapes = open_world(tiny_clevr_world)
    m = 400
    data = CentreData(
        torch.rand(1, 3, 32, 32), torch.zeros(m).long(), torch.full((m, 2), 16.0),
        torch.zeros(m), torch.zeros(m).long(), torch.zeros(m),
    )  # fmt: skip
    index = torch.arange(m)
    g = torch.Generator().manual_seed(0)
    config = CentreTrainConfig(noise_px=5.0, max_noise_px=16.0, read_noise_px=0.5)
    _, target, maps = noisy_windows(data, index, config, 8, g)
    assert maps is None  # none asked for
    far, near = target[: m // 2].std(), target[m // 2 :].std()
    assert far == pytest.approx(5.0, rel=0.15) and near == pytest.approx(0.5, rel=0.15)
    # the scale and the kinds learn from the near half only: the far half's targets for
    # them do not move the loss, the near half's do
    refiner = CentreRefiner(
        32, window=8, channels=(8,), hidden=8, reads_scale=True, factors=factor_sizes(shapes)
    )
    windows, offsets = torch.rand(4, 3, 8, 8), torch.zeros(4, 2)
    scales, values = torch.zeros(4), torch.zeros(4, len(shapes.factors), dtype=torch.long)
    near = slice(2, None)
    with torch.no_grad():
        base = training_loss(refiner, windows, offsets, scales, values, near)
        far_changed = training_loss(
            refiner,
            windows,
            offsets,
            torch.tensor([1.0, 1.0, 0, 0]),
            values.index_fill(0, torch.tensor([0, 1]), 1),
            near,
        )
        near_changed = training_loss(
            refiner, windows, offsets, torch.tensor([0, 0, 1.0, 1.0]), values, near
        )
    assert far_changed == pytest.approx(float(base))
    assert float(near_changed) > float(base) + 1.0


def test_the_kind_posterior_weighs_q_by_the_refiners_reading(tiny_clevr_world):
    _, shapes = open_world(tiny_clevr_world)
    index = torch.as_tensor(shapes.factor_index())
    sizes = factor_sizes(shapes)
    q = torch.softmax(torch.randn(4, len(shapes), generator=torch.Generator().manual_seed(0)), -1)
    silent = tuple(torch.zeros(4, n) for n in sizes)
    assert torch.allclose(kind_posterior(shapes, q, silent), q, atol=1e-6)  # uniform: q's own
    assert kind_posterior(shapes, q, ()) is q
    # the refiner sure of shape 1: q's best kind of that shape wins, q keeps the rest
    sure = [torch.zeros(4, n) for n in sizes]
    sure[0][:, 1] = 30.0
    posterior = kind_posterior(shapes, q, tuple(sure))
    best = posterior.argmax(-1)
    assert (index[best, 0] == 1).all()
    of_shape = torch.where(index[:, 0] == 1, q, torch.zeros_like(q))
    assert torch.equal(best, of_shape.argmax(-1))
    assert torch.allclose(posterior.sum(-1), torch.ones(4))


def test_resize_canvas_is_what_loading_the_file_at_that_size_gives(tiny_clevr_world):
    """For a file at the finer canvas's own size (CLEVR's: 320 x 240 on a 320 canvas)."""
    world, _ = open_world(tiny_clevr_world)
    image = to_pil(torch.rand(3, FINE * 3 // 4, FINE))
    fine, coarse = Canvas.of(fine_world(world, FINE)), Canvas.of(world)
    resized = resize_canvas(to_canvas(image, fine)[None], fine, coarse)[0]
    assert (resized - to_canvas(image, coarse)).abs().max() < 1.5 / 255


@pytest.fixture(scope="module")
def sharpening_checkpoint(tiny_clevr_checkpoint, tmp_path_factory):
    checkpoint = torch.load(tiny_clevr_checkpoint, weights_only=True)
    torch.manual_seed(0)
    refiner = CentreRefiner(
        FINE, window=16, channels=(8, 8), hidden=16, reads_scale=True, scale_reference=-3.1
    )
    torch.nn.init.normal_(refiner.net[-1].weight, std=0.05)  # one that moves centres
    checkpoint[CHECKPOINT_KEY] = refiner.state()
    path = tmp_path_factory.mktemp("sharpening") / "model.pt"
    torch.save(checkpoint, path)
    return path


def test_a_predictor_with_a_refiner_reads_its_finer_canvas(
    tiny_clevr_checkpoint, sharpening_checkpoint, tiny_clevr_world
):
    plain = Predictor.from_checkpoint(tiny_clevr_checkpoint, frozen=False, fit=False)
    sharp = Predictor.from_checkpoint(sharpening_checkpoint, frozen=False, fit=False)
    assert plain.canvas == plain.q_canvas and plain.canvas.size == 32
    assert sharp.canvas.size == FINE and sharp.q_canvas == plain.q_canvas
    world, shapes = open_world(tiny_clevr_world)
    fine = fine_world(world, FINE)
    scenes = sample_scenes(fine, shapes, 3, 1)
    images = SceneRenderer(fine, shapes).render_scenes(scenes)
    coarse = resize_canvas(images, sharp.canvas, sharp.q_canvas)
    from_q = plain.infer(coarse)
    # q's canvas in: q's answer as it was; the finer canvas in: the same objects, moved
    assert [i.to_json() for i in sharp.infer(coarse)] == [i.to_json() for i in from_q]
    from_fine = sharp.infer(images)
    moved = 0
    for a, b in zip(from_q, from_fine, strict=True):
        assert [o.shape for o in a.objects] == [o.shape for o in b.objects]
        for p, q in zip(a.objects, b.objects, strict=True):
            assert p.position[1] == q.position[1]  # the height stays q's
            moved += p.position != q.position
        # the refiner reads scales: the camera is fitted where there are objects
        assert (a.camera != b.camera) == bool(a.objects)
    assert moved > 0
    with pytest.raises(ValueError, match=r"with S 64 \(the centre refiner's\) or 32"):
        sharp.infer(torch.zeros(1, 3, 48, 48))


def test_a_predictor_takes_the_kinds_its_refiner_names(tiny_clevr_checkpoint, tmp_path):
    checkpoint = torch.load(tiny_clevr_checkpoint, weights_only=True)
    shapes = ShapeLibrary.from_dict(checkpoint["shapes"])
    sizes = factor_sizes(shapes)
    refiner = CentreRefiner(FINE, window=16, channels=(8, 8), hidden=16, factors=sizes)
    with torch.no_grad():  # sure of every factor's last value, whatever it sees
        refiner.net[-1].bias[2:] = torch.cat([torch.arange(n) * 50.0 for n in sizes])
    checkpoint[CHECKPOINT_KEY] = refiner.state()
    path = tmp_path / "naming.pt"
    torch.save(checkpoint, path)
    predictor = Predictor.from_checkpoint(path, frozen=False, fit=False)
    images = torch.rand(4, 3, FINE, FINE)
    named = [o for inference in predictor.infer(images) for o in inference.objects]
    assert named  # q finds something in noise
    last = {name: values[-1] for name, values in shapes.factors}
    for o in named:
        assert o.shape == last["shape"] and dict(o.attributes) == {
            name: value for name, value in last.items() if name != "shape"
        }
        assert o.shape_probs[o.shape] > 0.99  # the probabilities are the weighed ones
        assert o.position[1] == pytest.approx(shapes.spec(o.shape, dict(o.attributes)).height / 2)
    # a refiner that names another library's kinds is a clear error
    checkpoint[CHECKPOINT_KEY] = CentreRefiner(FINE, window=16, factors=(2, 2)).state()
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="its shape library has"):
        Predictor.from_checkpoint(path)


def test_a_broken_refiner_in_a_checkpoint_is_a_clear_error(tiny_clevr_checkpoint, tmp_path):
    checkpoint = torch.load(tiny_clevr_checkpoint, weights_only=True)
    checkpoint[CHECKPOINT_KEY] = {"config": {"fine_size": FINE}, "weights": {"nonsense": 1}}
    path = tmp_path / "broken.pt"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="centre refiner is broken"):
        Predictor.from_checkpoint(path)


def test_the_fine_world_keeps_the_frame_and_camera(world):
    fine = fine_world(world, 3 * world.image_size)
    assert fine.camera == world.camera and fine.frame == world.frame
    assert dataclasses.replace(fine, image_size=world.image_size) == world


def test_train_centres_writes_a_refiner_that_the_predictor_uses(
    tiny_clevr_checkpoint, tmp_path, capsys
):
    import shutil

    from air3d.cli import main

    path = tmp_path / "model.pt"
    shutil.copy(tiny_clevr_checkpoint, path)
    cache = tmp_path / "cache"
    argv = ["train-centres", "--checkpoint", str(path), "--scenes", "6", "--steps", "4"]
    argv += ["--batch-size", "8", "--window", "16", "--fine-size", str(FINE)]
    argv += ["--cache", str(cache), "--curve", str(tmp_path / "curve.json")]
    assert main(argv) == 0
    assert len(list(cache.glob("centres-*.pt"))) == 1  # the rendering, kept for a rerun
    assert (tmp_path / "curve.json").exists()
    predictor = Predictor.from_checkpoint(path, frozen=False, fit=False)
    assert predictor.centres is not None and predictor.canvas.size == FINE
    assert predictor.centres.reads_scale  # the clevr world's camera jitters
    assert predictor.centres.factors == factor_sizes(predictor.shapes)  # and it names kinds
    first = predictor.centres.net[0].weight.clone()
    assert main([*argv, "--steps", "1", "--from-existing"]) == 0  # it starts from the last
    again = Predictor.from_checkpoint(path, frozen=False, fit=False).centres
    assert (again.net[0].weight - first).abs().max() < 0.1 * first.abs().max()
    assert main([*argv, "--steps", "1", "--from-existing", "--context"]) == 0  # it gains one
    wide = Predictor.from_checkpoint(path, frozen=False, fit=False).centres
    assert wide.context and wide.span == 32
    assert main([*argv, "--steps", "1", "--from-existing", "--context", "--neighbours"]) == 0
    seeing = Predictor.from_checkpoint(path, frozen=False, fit=False)
    assert seeing.centres is not None and seeing.centres.neighbours
    assert len(seeing.infer(torch.rand(2, 3, FINE, FINE))) == 2
    assert main([*argv[:-6], "--fine-size", "32", "--cache", str(cache)]) != 0
    assert "--fine-size must be above" in capsys.readouterr().err


def test_contact_shadows_darken_the_floor_at_the_objects_foot_only():
    windows = torch.full((3, 3, 32, 32), 0.8)
    targets = torch.tensor([[0.0, 0.0], [0.0, 0.0], [4.0, -3.0]])
    log_scales = torch.full((3,), math.log(8.0 / 400.0))  # 8 px from centre to foot at f 400
    chosen = torch.tensor([1.0, 0.0, 1.0])  # the middle window's object gets none
    out = contact_shadows(
        windows, targets, log_scales, 400.0, chosen, torch.Generator().manual_seed(0)
    )
    assert torch.equal(out[1], windows[1])
    assert (out <= windows).all()  # only ever darker
    for i, (column, row) in ((0, (15, 15)), (2, (19, 12))):
        foot = out[i, :, row + 9, column]  # the pixel about 8 px below the centre
        assert (foot < 0.75).all(), foot
        assert torch.allclose(out[i, :, row - 8, column], windows[i, :, row - 8, column])
    assert torch.equal(
        contact_shadows(windows, targets, log_scales, 400.0, 0.0, torch.Generator()), windows
    )
