"""Training clips for the reward model, and the sampling weights that balance their labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from wmpo_cli.models.reward_model.windows import clip_indices, first_success_step, window_end_steps, window_labels


@dataclass(frozen=True)
class LabelledEpisode:
    """One episode's frames (T, S, S, 3) uint8 and per-step success (T,) bool, with its origin."""

    frames: np.ndarray
    step_success: np.ndarray
    source: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.step_success):
            raise ValueError(f"{len(self.frames)} frames but {len(self.step_success)} success flags")

    @property
    def success_step(self) -> int | None:
        return first_success_step(self.step_success)


class ClipDataset(Dataset):
    """Every window of every episode: items are {"clip": uint8 (F, S, S, 3), "label": float}."""

    def __init__(self, episodes: Sequence[LabelledEpisode], clip_frames: int, stride: int) -> None:
        self.episodes = list(episodes)
        self.clip_frames, self.stride = clip_frames, stride
        rows, labels = [], []
        for e, episode in enumerate(self.episodes):
            ends = window_end_steps(len(episode.frames), clip_frames, stride)
            rows.append(np.stack([np.full(len(ends), e), ends], axis=1))
            labels.append(window_labels(episode.step_success, clip_frames, stride))
        self.index = np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 2), dtype=np.int64)
        self.labels = np.concatenate(labels).astype(bool) if labels else np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        e, end = (int(v) for v in self.index[item])
        frames = self.episodes[e].frames[clip_indices(end, self.clip_frames, self.stride)]
        return {"clip": torch.from_numpy(np.ascontiguousarray(frames)), "label": torch.tensor(float(self.labels[item]))}

    def balanced_weights(self) -> np.ndarray:
        """Per-window sampling weights giving positives and negatives equal total mass.

        Successes are rare windows (a successful expert episode ends a few steps after its first
        success frame), so uniform sampling would teach "never success".
        """
        positives = int(self.labels.sum())
        negatives = len(self.labels) - positives
        if positives == 0 or negatives == 0:
            return np.full(len(self.labels), 1.0 / max(1, len(self.labels)))
        return np.where(self.labels, 0.5 / positives, 0.5 / negatives)
