"""gaussian_log_likelihood: log N(x; render, sigma^2 I) summed per image."""

from __future__ import annotations

import math

import pytest
import torch

from air3d.renderer import gaussian_log_likelihood


def test_matches_the_closed_form() -> None:
    images = torch.zeros(2, 3, 4, 4)
    rendered = torch.zeros(2, 3, 4, 4)
    rendered[1] = 0.2
    sigma = 0.1
    result = gaussian_log_likelihood(images, rendered, sigma)
    n = 3 * 4 * 4
    constant = -n * (math.log(sigma) + 0.5 * math.log(2 * math.pi))
    assert result.shape == (2,)
    assert result[0].item() == pytest.approx(constant)
    assert result[1].item() == pytest.approx(constant - 0.5 * n * (0.2 / sigma) ** 2, rel=1e-5)


def test_highest_where_the_render_matches_and_differentiable() -> None:
    torch.manual_seed(0)
    images = torch.rand(1, 3, 8, 8)
    rendered = (images + 0.05 * torch.randn_like(images)).requires_grad_(True)
    ll = gaussian_log_likelihood(images, rendered, 0.1)
    assert ll < gaussian_log_likelihood(images, images, 0.1)
    ll.sum().backward()
    torch.testing.assert_close(rendered.grad, (images - rendered.detach()) / 0.01)


def test_shape_mismatch_is_refused() -> None:
    message = r"images \(1, 3, 8, 8\) and renders \(1, 3, 4, 4\) differ"
    with pytest.raises(ValueError, match=message):
        gaussian_log_likelihood(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 4, 4), 0.1)
