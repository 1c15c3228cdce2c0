"""The small networks that make up q(z | x). Each takes X to Y, as its docstring says."""

from __future__ import annotations

import torch
from torch import nn


def conv_stack(in_channels: int, channels: tuple[int, ...]) -> nn.Sequential:
    """Stride-2 3x3 convolutions with ReLU: each halves the resolution."""
    layers: list[nn.Module] = []
    for out_channels in channels:
        layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), nn.ReLU()]
        in_channels = out_channels
    return nn.Sequential(*layers)


def with_coordinates(images: torch.Tensor) -> torch.Tensor:
    """Appends two channels holding each pixel's x and y in [-1, 1] (CoordConv), so that
    convolutions can tell where in the frame a feature is."""
    B, _, H, W = images.shape
    ys = torch.linspace(-1, 1, H, device=images.device, dtype=images.dtype)
    xs = torch.linspace(-1, 1, W, device=images.device, dtype=images.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([grid_x, grid_y]).expand(B, 2, H, W)
    return torch.cat([images, coords], dim=1)


class ImageEncoder(nn.Module):
    """Takes images (B, 3, S, S) to codes (B, feature_dim)."""

    def __init__(self, image_size: int, channels: tuple[int, ...], feature_dim: int):
        super().__init__()
        self.convs = conv_stack(3 + 2, channels)
        side = image_size
        for _ in channels:
            side = (side + 1) // 2
        self.fc = nn.Sequential(nn.Linear(channels[-1] * side * side, feature_dim), nn.ReLU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(with_coordinates(images)).flatten(1))


class GlimpseEncoder(nn.Module):
    """Takes glimpses (B, 3, G, G) to codes (B, glimpse_dim)."""

    def __init__(self, glimpse_size: int, channels: tuple[int, ...], glimpse_dim: int):
        super().__init__()
        self.encoder = ImageEncoder(glimpse_size, channels, glimpse_dim)

    def forward(self, glimpses: torch.Tensor) -> torch.Tensor:
        return self.encoder(glimpses)


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def extract_glimpses(
    images: torch.Tensor, centres: torch.Tensor, window: float, size: int
) -> torch.Tensor:
    """Takes images (B, 3, S, S) and centres (B, 2) in grid_sample coordinates to glimpses
    (B, 3, size, size) of side `window` (a fraction of the image side): AIR's spatial
    transformer with a fixed scale. Differentiable in the centres."""
    B = images.shape[0]
    theta = torch.zeros(B, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = window
    theta[:, 1, 1] = window
    theta[:, :, 2] = centres
    grid = nn.functional.affine_grid(theta, (B, 3, size, size), align_corners=False)
    return nn.functional.grid_sample(images, grid, align_corners=False, padding_mode="border")
