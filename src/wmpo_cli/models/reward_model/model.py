"""The video reward model: a VideoMAE success classifier over sliding clips, with its threshold.

``score(frames)`` gives the success probability of every window of an episode (stride 1, see
:mod:`~wmpo_cli.models.reward_model.windows`); ``first_success(frames)`` is the end step of the
first window at or above the calibrated threshold, the imagined episode's finish step as in
WMPO. Both have batched forms that pack the windows of many trajectories into shared forward
passes, which is how RL calls them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wmpo_cli.models.policy.images import augment
from wmpo_cli.models.reward_model.config import RewardModelConfig
from wmpo_cli.models.reward_model.windows import clip_indices, first_window_above, window_end_steps

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# VideoMAE's pixel normalisation (ImageNet statistics), so a pretrained backbone sees what it expects.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


class RewardModelLoadError(Exception):
    """A reward-model export that cannot be loaded (missing file, bad config, weights mismatch)."""


def videomae_config(cfg: RewardModelConfig) -> Any:
    from transformers import VideoMAEConfig

    return VideoMAEConfig(
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        num_channels=3,
        num_frames=cfg.clip_frames,
        tubelet_size=cfg.tubelet_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.intermediate_size,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        use_mean_pooling=True,
        num_labels=1,
    )


class RewardModel(nn.Module):
    """VideoMAE over (B, clip_frames, 3, S, S) clips -> one success logit per clip."""

    def __init__(self, cfg: RewardModelConfig, backbone: nn.Module | None = None) -> None:
        super().__init__()
        from transformers import VideoMAEForVideoClassification

        cfg.check()
        self.cfg = cfg
        self.backbone = backbone if backbone is not None else VideoMAEForVideoClassification(videomae_config(cfg))
        self.register_buffer("pixel_mean", torch.tensor(IMAGE_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGE_STD).view(1, 1, 3, 1, 1), persistent=False)

    @classmethod
    def from_local_videomae(cls, cfg: RewardModelConfig, directory: str) -> RewardModel:
        """Start from a local pretrained VideoMAE directory; its shape replaces cfg's shape fields."""
        from dataclasses import replace

        from transformers import VideoMAEForVideoClassification

        backbone = VideoMAEForVideoClassification.from_pretrained(
            directory, num_labels=1, ignore_mismatched_sizes=True, local_files_only=True
        )
        c = backbone.config
        shaped = replace(
            cfg,
            image_size=int(c.image_size),
            clip_frames=int(c.num_frames),
            patch_size=int(c.patch_size),
            tubelet_size=int(c.tubelet_size),
            hidden_size=int(c.hidden_size),
            layers=int(c.num_hidden_layers),
            heads=int(c.num_attention_heads),
            intermediate_size=int(c.intermediate_size),
            pretrained=str(directory),
        )
        return cls(shaped, backbone)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    # -- pixels -------------------------------------------------------------------------------

    def prepare(
        self, clips: torch.Tensor, generator: torch.Generator | None = None, train: bool = False
    ) -> torch.Tensor:
        """uint8 (B, F, S, S, 3) clips -> normalised float (B, F, 3, image_size, image_size).

        Training takes one random crop (and jitter) per clip; inference the centre crop.
        """
        if clips.dtype != torch.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
            raise ValueError(f"expected uint8 clips of shape (B, F, S, S, 3), got {tuple(clips.shape)} {clips.dtype}")
        b, f = clips.shape[:2]
        flat = clips.reshape(b * f, *clips.shape[2:])
        size, scale = self.cfg.image_size, self.cfg.crop_scale
        if train:
            images = augment(flat, size, scale, generator, group=f)
        else:
            from wmpo_cli.models.policy.images import preprocess

            images = preprocess(flat, size, scale)
        unit = (images + 1.0) / 2.0  # the policy helpers return [-1, 1]
        unit = unit.reshape(b, f, 3, size, size)
        return (unit - self.pixel_mean) / self.pixel_std

    @property
    def feature_size(self) -> int:
        return int(self.backbone.config.hidden_size)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Prepared (B, F, 3, S, S) pixels -> (B, hidden) pooled clip features, what the
        classification head reads (VideoMAEForVideoClassification's own pooling, step by step, so
        training can attach auxiliary heads to the same features)."""
        tokens = self.backbone.videomae(pixel_values=pixels).last_hidden_state
        if self.backbone.fc_norm is not None:
            return self.backbone.fc_norm(tokens.mean(1))
        return tokens[:, 0]

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, hidden) pooled features -> (B,) success logits."""
        return self.backbone.classifier(features).squeeze(-1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Prepared (B, F, 3, S, S) pixels -> (B,) success logits."""
        return self.head(self.features(pixels))

    # -- scoring ------------------------------------------------------------------------------

    @torch.no_grad()
    def clip_probabilities(self, clips: torch.Tensor) -> np.ndarray:
        """(N,) success probabilities of uint8 (N, F, S, S, 3) clips (one forward pass)."""
        logits = self(self.prepare(clips.to(self.device))).float() + self.cfg.logit_offset
        return torch.sigmoid(logits).cpu().numpy()

    def window_end_steps(self, length: int) -> np.ndarray:
        return window_end_steps(length, self.cfg.clip_frames, self.cfg.stride)

    def score_many(self, episodes: Sequence[np.ndarray | torch.Tensor], batch_size: int = 64) -> list[np.ndarray]:
        """Per-window success probabilities of each of many (T, S, S, 3) uint8 frame sequences.

        The windows of all sequences share forward passes of ``batch_size`` clips, so many short
        imagined trajectories cost about as much as one long one of the same total length. Clips
        are gathered batch by batch: memory stays at one batch of clips, not all of them.
        """
        tensors = [f if isinstance(f, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(f)) for f in episodes]
        windows = [(e, int(end)) for e, t in enumerate(tensors) for end in self.window_end_steps(len(t))]
        was_training = self.training
        self.eval()
        try:
            parts = []
            for i in range(0, len(windows), batch_size):
                clips = torch.stack(
                    [
                        tensors[e][torch.from_numpy(clip_indices(end, self.cfg.clip_frames, self.cfg.stride))]
                        for e, end in windows[i : i + batch_size]
                    ]
                )
                parts.append(self.clip_probabilities(clips))
        finally:
            self.train(was_training)
        flat = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)
        counts = [len(self.window_end_steps(len(t))) for t in tensors]
        return list(np.split(flat, np.cumsum(counts)[:-1])) if tensors else []

    def score(self, frames: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """(num_windows,) success probability of every window of one episode (stride 1)."""
        return self.score_many([frames], batch_size)[0]

    def first_success_many(
        self, episodes: Sequence[np.ndarray | torch.Tensor], batch_size: int = 64, threshold: float | None = None
    ) -> list[int | None]:
        """Finish step of each sequence: the end step of its first window at or above the threshold."""
        cut = self.cfg.threshold if threshold is None else threshold
        scores = self.score_many(episodes, batch_size)
        return [
            first_window_above(s, self.window_end_steps(len(f)), cut) for s, f in zip(scores, episodes, strict=True)
        ]

    def first_success(self, frames: np.ndarray | torch.Tensor, threshold: float | None = None) -> int | None:
        """The finish step (see ``first_success_many``), or None when no window reaches the threshold."""
        return self.first_success_many([frames], threshold=threshold)[0]

    # -- export -------------------------------------------------------------------------------

    def export_config(self) -> dict[str, Any]:
        data = self.cfg.to_dict()
        # The backbone's full transformers config: rebuilds a pretrained shape exactly.
        data["videomae"] = self.backbone.config.to_dict()
        return data

    def save_pretrained(self, directory: Path) -> None:
        """``config.json`` (with the threshold) and ``model.safetensors``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": self.cfg.format})
        (directory / CONFIG_FILE).write_text(json.dumps(self.export_config(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_pretrained(cls, directory: Path | str, map_location: str = "cpu") -> RewardModel:
        """Load an export; every problem is a one-line :class:`RewardModelLoadError`."""
        from safetensors.torch import load_file
        from transformers import VideoMAEConfig, VideoMAEForVideoClassification

        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not config_path.exists() or not weights_path.exists():
            raise RewardModelLoadError(
                f"{directory}: not a reward-model export (needs {CONFIG_FILE} and {WEIGHTS_FILE})"
            )
        try:
            data = json.loads(config_path.read_text())
            cfg = RewardModelConfig.from_dict(data)
            backbone_cfg = VideoMAEConfig.from_dict(data["videomae"]) if "videomae" in data else videomae_config(cfg)
        except (OSError, json.JSONDecodeError, ValueError, TypeError) as exc:
            raise RewardModelLoadError(f"{config_path}: {exc}") from None
        model = cls(cfg, VideoMAEForVideoClassification(backbone_cfg))
        try:
            model.load_state_dict(load_file(str(weights_path), device=map_location), strict=True)
        except (RuntimeError, OSError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise RewardModelLoadError(f"{weights_path}: weights do not fit the config ({first})") from None
        return model.to(map_location).eval()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
