"""log p(x | z): the pixel likelihood the model is trained against."""

from __future__ import annotations

import math

import torch


def gaussian_log_likelihood(
    images: torch.Tensor, rendered: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Takes observed and rendered images (B, 3, H, W) to log N(x; render, sigma^2 I), (B,).

    Independent Gaussian per pixel and channel with a fixed standard deviation (the
    scene config's likelihood.pixel_sigma), summed over the image as in AIR's ELBO.
    """
    if images.shape != rendered.shape:
        raise ValueError(f"images {tuple(images.shape)} and renders {tuple(rendered.shape)} differ")
    residual = (images - rendered) / sigma
    per_pixel = -0.5 * residual.pow(2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)
    return per_pixel.flatten(1).sum(1)
