"""What is left to explain: the input with the objects found so far painted out.

AIR's steps stop where training stopped them: a q trained on scenes of at most N objects
learns to say "absent" after N steps, whatever the image holds. DAIR (Eslami et al. 2016,
section 3.2) lets each step see the difference between the input and what was explained
so far, so counting does not depend on the step index. With a renderer in the loop that
difference is cheap to form without retraining: render the objects found so far, paint the
pixels they cover with the ground (at the input's own ground colour), and the result is
again a scene of the world, holding only the objects still to find. q reads it like any
other image. The Predictor (model/predictor.py, _ask_q) repeats the passes while the last
one found all but one of its steps or more, and the cap on the count is not reached.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from air3d.renderer import SceneBatch, SceneRenderer

DILATE_PIXELS = 2  # the input's object edges (anti-aliasing, a small position error) go too
GROUND_TOLERANCE = 0.1  # a pixel this far from the ground fill (max over channels) is not ground
MIN_SUPPORT = 0.3  # a new object must stand on at least this fraction of non-ground pixels


def erase_found(
    images: torch.Tensor, found: SceneBatch, renderer: SceneRenderer
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """images (B, 3, H, W) with the pixels of `found`'s objects painted with the ground, that
    ground (B, 3, H, W) on its own, and the crisp drawing of `found` (B, 3, H, W).

    The ground is the renderer's, scaled per image and channel to the input's own ground
    (the median ratio over the pixels no found object covers), so an input from another
    renderer, camera or tone curve is filled with its own ground colour, not ours.
    """
    found = found.to(renderer.device)
    images = images.to(renderer.device)
    ground = _ground(renderer, len(found), found.eye)
    drawn = renderer(found, "crisp")
    covered = _differs(drawn, ground)[:, None]  # (B, 1, H, W)
    size = 2 * DILATE_PIXELS + 1
    covered = F.max_pool2d(covered.float(), size, stride=1, padding=DILATE_PIXELS) > 0
    ratio = images / ground.clamp(min=1e-3)
    ratio = torch.where(covered, torch.nan, ratio).flatten(2).nanmedian(-1).values  # (B, 3)
    fill = (ground * ratio.nan_to_num(1.0)[..., None, None]).clamp(0.0, 1.0)
    return torch.where(covered, fill, images), fill, drawn


def supported(
    erased: torch.Tensor, fill: torch.Tensor, candidates: SceneBatch, renderer: SceneRenderer
) -> torch.Tensor:
    """Which present candidates (B, M) stand on pixels that are not ground: at least
    MIN_SUPPORT of the pixels each would cover differ from the ground fill. What is left
    of an object found with a small position error (a thin crescent) does not."""
    scene, slot = candidates.present.nonzero(as_tuple=True)
    result = torch.zeros_like(candidates.present)
    if len(scene) == 0:
        return result
    eye = None if candidates.eye is None else candidates.eye[scene]  # each its scene's camera
    alone = SceneBatch(  # each present candidate in a scene of its own: (K, 1) slots
        candidates.shape[scene, slot][:, None],
        torch.ones(len(scene), 1, dtype=torch.bool),
        candidates.xz[scene, slot][:, None],
        candidates.yaw[scene, slot][:, None],
        eye,
    ).to(renderer.device)
    ground = _ground(renderer, len(scene), eye)
    silhouette = _differs(renderer(alone, "crisp"), ground)  # (K, H, W)
    non_ground = (erased - fill).abs().amax(1) > GROUND_TOLERANCE  # (B, H, W)
    on = (silhouette & non_ground[scene.to(non_ground.device)]).sum((1, 2))
    result[scene, slot] = (on / silhouette.sum((1, 2)).clamp(min=1) >= MIN_SUPPORT).cpu()
    return result


def distinct(answer: SceneBatch, min_distance: float) -> torch.Tensor:
    """(B, N) presence with repeats dropped: a step whose object stands nearer than
    min_distance to an object an earlier step kept is that object found twice (two steps
    of q on one object, a crowded scene's failure), not a second object."""
    present = answer.present.clone()
    if min_distance <= 0:
        return present
    gap = torch.cdist(answer.xz, answer.xz)  # (B, N, N)
    for n in range(1, present.shape[1]):
        near = (gap[:, n, :n] < min_distance) & present[:, :n]
        present[:, n] &= ~near.any(1)
    return present


def new_objects(found: SceneBatch, candidates: SceneBatch, min_distance: float) -> torch.Tensor:
    """Which present candidates (B, M) stand at least min_distance from every found object:
    a candidate nearer than that is the rim of an object already found, not a new one."""
    gap = torch.cdist(candidates.xz, found.xz.to(candidates.xz))  # (B, M, N)
    gap = torch.where(found.present.to(gap.device)[:, None, :], gap, torch.inf)
    return candidates.present & (gap.amin(-1) >= min_distance)


def _ground(renderer: SceneRenderer, batch: int, eye: torch.Tensor | None = None) -> torch.Tensor:
    """The renderer's empty ground, (batch, 3, H, W), seen from each eye (None: the world's
    camera)."""
    nothing = torch.zeros(batch, 1, dtype=torch.bool)
    empty = SceneBatch(
        nothing.long(), nothing, torch.zeros(batch, 1, 2), torch.zeros(batch, 1), eye
    )
    return renderer(empty.to(renderer.device), "crisp")


def _differs(drawn: torch.Tensor, ground: torch.Tensor) -> torch.Tensor:
    """Where a drawing (B, 3, H, W) is not the bare ground: its objects' pixels, (B, H, W)."""
    return (drawn - ground).abs().amax(1) > 1e-4
