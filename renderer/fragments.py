"""Differentiable fragments: PyTorch3D picks the faces, batched torch ops recompute them.

PyTorch3D's CPU rasteriser backward (`_RasterizeFaceVertsBackward`) issues a few tensor
operations per covered pixel and fragment: three quarters of a soft training step on CPU.
Here PyTorch3D's rasteriser runs without autograd and only decides which faces cover
each pixel (pix_to_face, the K nearest within the blur radius). The quantities that
carry gradients, barycentric coordinates, depth and the signed squared distance to the
face, are recomputed for the covered fragments alone from the faces' NDC vertices, with
PyTorch3D's own definitions (`rasterize_meshes_python`: edge functions with its
epsilon, barycentric clipping, point-to-segment distances), so autograd differentiates
them in a few vectorised operations. Values match PyTorch3D's to float rounding
(tests/renderer/test_fragments.py), and so do the gradients.
"""

from __future__ import annotations

import torch
from pytorch3d.renderer.mesh.rasterizer import Fragments

EPSILON = 1e-8  # PyTorch3D's kEpsilon: added to face areas, the degenerate-edge threshold


def pixel_centres(size: int, device: torch.device) -> torch.Tensor:
    """NDC (x, y) of each pixel centre of a square image, (size, size, 2).

    PyTorch3D's convention: +x points left and +y up, so column 0 is x = 1 - 1/size.
    """
    ndc = 1.0 - (2.0 * torch.arange(size, device=device, dtype=torch.float32) + 1.0) / size
    y, x = torch.meshgrid(ndc, ndc, indexing="ij")
    return torch.stack([x, y], dim=-1)


def fragments(face_verts: torch.Tensor, pix_to_face: torch.Tensor, clip_bary: bool) -> Fragments:
    """Takes NDC face vertices (F, 3, 3) and pix_to_face (B, H, W, K) to full Fragments.

    Empty slots (pix_to_face -1) hold -1 in every field, as PyTorch3D's do. Barycentric
    coordinates are screen-space (no perspective correction); with clip_bary they are
    clamped to the face and renormalised before interpolating depth, as PyTorch3D does
    when the blur radius is positive.
    """
    B, H, W, K = pix_to_face.shape
    pixel = torch.arange(H * W, device=pix_to_face.device).repeat(B)
    zbuf, bary, dists = pixel_fragments(face_verts, pix_to_face.reshape(-1, K), pixel, H, clip_bary)
    return Fragments(
        pix_to_face=pix_to_face,
        zbuf=zbuf.reshape(B, H, W, K),
        bary_coords=bary.reshape(B, H, W, K, 3),
        dists=dists.reshape(B, H, W, K),
    )


def pixel_fragments(
    face_verts: torch.Tensor, pix_to_face: torch.Tensor, pixel: torch.Tensor, size: int,
    clip_bary: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """The fragments of some pixels: pix_to_face (P, K) of the pixels whose index in a
    size x size image is `pixel` (P,), to zbuf (P, K), bary_coords (P, K, 3) and dists
    (P, K), as `fragments` computes them (soft mode asks for its covered pixels alone)."""
    P, K = pix_to_face.shape
    flat = pix_to_face.reshape(-1)
    slots = (flat >= 0).nonzero()[:, 0]
    p = pixel_centres(size, face_verts.device).reshape(-1, 2)[pixel[slots // K]]  # (M, 2)
    v = face_verts[flat[slots]]  # (M, 3, 3)
    bary, inside = _barycentric(p, v[:, :, :2])
    if clip_bary:
        bary = bary.clamp(min=0.0)
        bary = bary / bary.sum(-1, keepdim=True).clamp(min=1e-5)
    z = (bary * v[:, :, 2]).sum(-1)  # (M,)
    d = _triangle_distance(p, v[:, :, :2])
    dists = torch.where(inside, -d, d)

    def scatter(values: torch.Tensor) -> torch.Tensor:
        full = values.new_full((P * K, *values.shape[1:]), -1.0)
        return full.index_put((slots,), values).reshape(P, K, *values.shape[1:])

    return scatter(z), scatter(bary), scatter(dists)


def _edge(p: torch.Tensor, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """PyTorch3D's edge function: the signed area of (v1 - v0) x (p - v0), (...,)."""
    return (p[..., 0] - v0[..., 0]) * (v1[..., 1] - v0[..., 1]) - (p[..., 1] - v0[..., 1]) * (
        v1[..., 0] - v0[..., 0]
    )


def _barycentric(p: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (M, 2) and triangles (M, 3, 2) to barycentric coordinates (M, 3) and inside (M,)."""
    v0, v1, v2 = v.unbind(1)
    area = _edge(v2, v0, v1) + EPSILON
    bary = torch.stack([_edge(p, v1, v2), _edge(p, v2, v0), _edge(p, v0, v1)], -1) / area[:, None]
    return bary, (bary > 0).all(-1)


def _segment_distance(p: torch.Tensor, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """Squared distance from points (M, 2) to segments v0-v1 (M, 2), (M,)."""
    edge = v1 - v0
    length2 = (edge * edge).sum(-1)
    t = ((edge * (p - v0)).sum(-1) / length2.clamp(min=EPSILON)).clamp(0.0, 1.0)
    delta = v0 + t[:, None] * edge - p
    to_end = p - v1  # PyTorch3D's answer for a degenerate edge
    return torch.where(length2 <= EPSILON, (to_end * to_end).sum(-1), (delta * delta).sum(-1))


def _triangle_distance(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Squared distance from points (M, 2) to the nearest edge of triangles (M, 3, 2), (M,)."""
    v0, v1, v2 = v.unbind(1)
    return torch.minimum(
        torch.minimum(_segment_distance(p, v0, v1), _segment_distance(p, v0, v2)),
        _segment_distance(p, v1, v2),
    )
