"""The procedural non-scenes: every kind drawn, deterministic, images in range; the table."""

from __future__ import annotations

import torch

from air3d.evaluation.non_scenes import KINDS, flag_table, non_scenes, srgb


def test_every_kind_is_drawn_in_range_and_the_seed_repeats_them(world, shapes):
    drawn = non_scenes(2 * len(KINDS), 32, world, shapes, seed=3)
    assert [kind for kind, _, _ in drawn] == list(KINDS) * 2
    for kind, variant, image in drawn:
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32, (kind, variant)
        assert image.min() >= 0.0 and image.max() <= 1.0
    again = non_scenes(2 * len(KINDS), 32, world, shapes, seed=3)
    assert all(torch.equal(a[2], b[2]) for a, b in zip(drawn, again, strict=True))
    other = non_scenes(2 * len(KINDS), 32, world, shapes, seed=4)
    assert not all(torch.equal(a[2], b[2]) for a, b in zip(drawn, other, strict=True))


def test_flag_table_counts_per_kind_and_in_all():
    rows = [("non_scene", "blank", True), ("non_scene", "noise", False),
            ("non_scene", "blank", True), ("non_scene_variant", "blank/red", True)]  # fmt: skip
    table = flag_table(rows)
    assert table["non_scene/blank"] == {"n": 2, "flagged": 2, "rate": 1.0}
    assert table["non_scene/all"] == {"n": 3, "flagged": 2, "rate": 2 / 3}
    assert "non_scene_variant/all" not in table and table["non_scene_variant/blank/red"]["n"] == 1


def test_srgb_is_the_standard_curve():
    linear = torch.tensor([0.0, 0.002, 0.18, 1.0])
    assert torch.allclose(srgb(linear), torch.tensor([0.0, 0.02584, 0.46135, 1.0]), atol=1e-4)
