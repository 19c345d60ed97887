"""Frame-fidelity metrics for frames in [-1, 1]: PSNR and SSIM (own implementations, batched)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) PSNR in dB of (N, ..., 3, S, S) frames in [-1, 1] (peak-to-peak range 2)."""
    mse = (prediction.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(4.0 / mse.clamp_min(1e-10))


def _gaussian_window(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def ssim(prediction: torch.Tensor, target: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """(N,) mean SSIM of (N, 3, S, S) frames in [-1, 1] (Wang et al. 2004, constants for range 2).

    Computed per channel with a Gaussian window and 'valid' borders, then averaged.
    """
    x, y = prediction.float(), target.float()
    c = x.shape[1]
    kernel = _gaussian_window(window, sigma).to(x.device)[None, None].repeat(c, 1, 1, 1)

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image, kernel, groups=c)

    c1, c2 = (0.01 * 2.0) ** 2, (0.03 * 2.0) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.flatten(1).mean(1)
