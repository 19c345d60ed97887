"""The reward model's description, stored as ``config.json`` in every export (threshold included)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

REWARD_MODEL_FORMAT = "wmpo.reward_model/1"


@dataclass(frozen=True)
class RewardModelConfig:
    """Everything needed to rebuild and use a reward model, apart from its weights.

    The classifier is a transformers ``VideoMAEForVideoClassification`` (mean-pooled tokens, one
    success logit) over a clip of ``clip_frames`` frames of ``camera``, taken every ``stride``
    steps; see :mod:`wmpo_cli.models.reward_model.windows` for how clips tile an episode.

    Attributes:
        task: the task whose episodes trained it.
        camera: the camera whose frames it judges.
        image_size: the VideoMAE input size; frames of another size are resized.
        clip_frames / stride: frames per clip and steps between them (WMPO: 8 and 1).
        crop_scale: inference looks at the centre crop keeping this share of the area (training
            takes random crops of the same area, as the policy does).
        patch_size / tubelet_size / hidden_size / layers / heads / intermediate_size: the
            VideoMAE shape (WMPO uses videomae-base: 16 / 2 / 768 / 12 / 12 / 3072 at 224 px).
        threshold: the calibrated decision threshold on a window's success probability.
        logit_offset: added to the network's logit before the sigmoid. Training batches are half
            success, so the raw logit assumes even odds; the offset, log(positives / negatives)
            of the training windows, restores the real base rate so probabilities are calibrated
            (the threshold, chosen after it, makes the same decisions either way).
        target_precision: the validation precision the threshold was chosen to reach (0 = best F1).
        pretrained: the local VideoMAE directory the weights started from ("" = from scratch).
    """

    task: str
    camera: str = "agentview"
    image_size: int = 64
    clip_frames: int = 8
    stride: int = 1
    crop_scale: float = 0.9
    patch_size: int = 8
    tubelet_size: int = 2
    hidden_size: int = 192
    layers: int = 4
    heads: int = 3
    intermediate_size: int = 768
    dropout: float = 0.0
    threshold: float = 0.5
    logit_offset: float = 0.0
    target_precision: float = 0.0
    pretrained: str = ""
    format: str = field(default=REWARD_MODEL_FORMAT)

    def check(self) -> None:
        """Raise ValueError for a configuration that cannot be built."""
        if self.clip_frames < 1 or self.stride < 1:
            raise ValueError("clip_frames and stride must be >= 1")
        if self.clip_frames % self.tubelet_size:
            raise ValueError(f"clip_frames {self.clip_frames} must be a multiple of tubelet_size {self.tubelet_size}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be a multiple of heads {self.heads}")
        if not 0.0 < self.crop_scale <= 1.0 or not 0.0 <= self.threshold <= 1.0:
            raise ValueError("crop_scale must be in (0, 1] and threshold in [0, 1]")

    def with_threshold(self, threshold: float, target_precision: float) -> RewardModelConfig:
        return replace(self, threshold=float(threshold), target_precision=float(target_precision))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RewardModelConfig:
        if data.get("format") != REWARD_MODEL_FORMAT:
            raise ValueError(
                f"not a wmpo reward-model config (format {data.get('format')!r}, expected {REWARD_MODEL_FORMAT!r})"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"videomae"})
        if unknown:
            raise ValueError(f"unknown reward-model config keys: {', '.join(unknown)}")
        try:
            cfg = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ValueError(f"reward-model config is incomplete ({exc})") from None
        cfg.check()
        return cfg
