"""Published set-prediction figures, printed beside ours (shared/worlds/clevr.md).

Average precision in %, keyed like the report's `ap` values ("inf", "1", ... CLEVR units);
None where the paper gives no figure. Their setting is not ours: supervised networks trained
on CLEVR's 70,000 labelled Blender images, images centre-cropped and resized to 128 x 128
(or 256 x 256), up to 10 objects. Ours learns from the world's renderer without labels.
"""

from __future__ import annotations

# world name -> rows of (model, {threshold key: AP %})
PUBLISHED_AP: dict[str, tuple[tuple[str, dict[str, float | None]], ...]] = {
    "clevr": (
        (
            "Slot Attention, supervised (Locatello et al. 2020)",
            {"inf": 94.3, "1": 86.7, "0.5": 56.0, "0.25": 10.8, "0.125": 0.9, "0.0625": None},
        ),
        (
            "iDSPN 128x128, supervised (Zhang et al. 2022)",
            {"inf": 98.8, "1": 98.5, "0.5": 98.2, "0.25": 95.8, "0.125": 76.9, "0.0625": 32.3},
        ),
        (
            "iDSPN 256x256, supervised (Zhang et al. 2022)",
            {"inf": 99.4, "1": 99.2, "0.5": 99.0, "0.25": 97.8, "0.125": 86.9, "0.0625": None},
        ),
    ),
}

PUBLISHED_NOTE = (
    "Published rows: supervised networks trained on CLEVR's labelled Blender images "
    "(centre-cropped, resized to 128x128 or 256x256), AP on CLEVR's validation images; "
    "air3d's q is trained on its renderer's images without labels."
)


def published_ap(world: str | None) -> tuple[tuple[str, dict[str, float | None]], ...]:
    """The published AP rows of a world (by name); () for a world without any."""
    return PUBLISHED_AP.get(world or "", ())
