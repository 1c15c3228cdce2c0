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


def coordinate_channels(height: int, width: int) -> torch.Tensor:
    """(1, 2, H, W): each pixel's x and y in [-1, 1] (CoordConv), appended to an encoder's
    input so that convolutions can tell where in the frame a feature is."""
    grid_y, grid_x = torch.meshgrid(
        torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij"
    )
    return torch.stack([grid_x, grid_y])[None]


class ImageEncoder(nn.Module):
    """Takes images (B, 3, S, S) to codes (B, feature_dim)."""

    def __init__(self, image_size: int, channels: tuple[int, ...], feature_dim: int):
        super().__init__()
        self.convs = conv_stack(3 + 2, channels)
        side = image_size
        for _ in channels:
            side = (side + 1) // 2
        self.fc = nn.Sequential(nn.Linear(channels[-1] * side * side, feature_dim), nn.ReLU())
        # Made once, not per call; not persistent: not part of the weights (state_dict).
        coordinates = coordinate_channels(image_size, image_size)
        self.register_buffer("coordinates", coordinates, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        coordinates = self.coordinates.to(images.dtype).expand(images.shape[0], -1, -1, -1)
        x = torch.cat([images, coordinates], dim=1)
        if x.shape[0] == 1:  # one image: channels-last convolutions are 10-20% faster
            x = x.contiguous(memory_format=torch.channels_last)
        return self.fc(self.convs(x).flatten(1))


class MapEncoder(nn.Module):
    """Takes images (B, 3, H, W) to a feature map (B, C, H / 2^n, W / 2^n) that stays
    spatial: n stride-2 3x3 convs over the image and its coordinates (CoordConv), then
    `context` stride-1 3x3 convs that let each cell see its neighbours. No size is fixed: a
    160 x 120 frame gives a 20 x 15 map as a 64 x 64 canvas gives 8 x 8."""

    def __init__(self, channels: tuple[int, ...], context: int):
        super().__init__()
        self.convs = conv_stack(3 + 2, channels)
        width = channels[-1]
        layers: list[nn.Module] = []
        for _ in range(context):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        self.context = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        B, _, H, W = images.shape
        coordinates = coordinate_channels(H, W).to(images).expand(B, -1, -1, -1)
        return self.context(self.convs(torch.cat([images, coordinates], dim=1)))


class GlimpseEncoder(nn.Module):
    """Takes glimpses (B, 3, G, G) to codes (B, glimpse_dim)."""

    def __init__(self, glimpse_size: int, channels: tuple[int, ...], glimpse_dim: int):
        super().__init__()
        self.encoder = ImageEncoder(glimpse_size, channels, glimpse_dim)

    def forward(self, glimpses: torch.Tensor) -> torch.Tensor:
        return self.encoder(glimpses)


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def extract_glimpses(images: torch.Tensor, centres: torch.Tensor, size: int) -> torch.Tensor:
    """Takes square images (B, C, S, S) and centres (B, 2) in grid_sample coordinates (x, y
    in [-1, 1]) to glimpses (B, C, size, size) at the image's own resolution: AIR's spatial
    transformer with a fixed scale of one image pixel per glimpse pixel. Differentiable
    in the centres (and the images).

    Equals `grid_sample(images, affine_grid(theta))` with theta = [[w, 0, cx], [0, w, cy]],
    w = size / S, bilinear, border padding, align_corners=False (tested): at that scale
    each glimpse row is an image row shifted by a sub-pixel offset, so the glimpse is a
    (size + 1)^2 crop at the integer part of the offset, gathered with indices clamped to
    the image (which is border padding), blended by the fractional part along x, then y.
    It costs a third of grid_sample and its sampling grid at batch 64.
    """
    B, C, _, W = images.shape
    # Pixel coordinate (align_corners=False) of the glimpse's first sample, x then y.
    start = centres * (W / 2) + (W - size) / 2  # (B, 2)
    base = start.floor()
    frac = start - base  # (B, 2) in [0, 1): the bilinear weights of the second tap
    taps = torch.arange(size + 1, device=images.device)
    index = (base.long()[:, :, None] + taps).clamp(0, W - 1)  # (B, 2, size + 1)
    flat = (index[:, 1, :, None] * W + index[:, 0, None, :]).view(B, 1, -1).expand(B, C, -1)
    crop = images.flatten(2).gather(2, flat).view(B, C, size + 1, size + 1)
    return blend_taps(crop, frac)


def blend_taps(crop: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """Crops (n, C, size + 1, size + 1) to windows (n, C, size, size) shifted by the
    sub-pixel fraction frac (n, 2) in [0, 1), x then y: bilinear between neighbouring taps."""
    fx = frac[:, 0, None, None, None]
    fy = frac[:, 1, None, None, None]
    rows_blended = torch.lerp(crop[..., :-1], crop[..., 1:], fx)  # (n, C, size + 1, size)
    return torch.lerp(rows_blended[:, :, :-1], rows_blended[:, :, 1:], fy)
