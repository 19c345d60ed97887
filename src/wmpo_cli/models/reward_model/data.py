"""Training clips for the reward model, and the sampling weights that balance their labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from wmpo_cli.models.reward_model.windows import clip_indices, first_success_step, window_end_steps, window_labels
from wmpo_cli.models.state_targets import StateTargets


@dataclass(frozen=True)
class LabelledEpisode:
    """One episode's frames (T, S, S, 3) uint8 and per-step success (T,) bool, with its origin.

    ``states`` (T, D), when given, is the simulator state behind each frame; training may use it
    as an auxiliary target (see :class:`StateTargets`). Scoring never needs it.
    """

    frames: np.ndarray
    step_success: np.ndarray
    source: str = ""
    name: str = ""
    states: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.step_success):
            raise ValueError(f"{len(self.frames)} frames but {len(self.step_success)} success flags")
        if self.states is not None and (self.states.ndim != 2 or len(self.states) != len(self.frames)):
            raise ValueError(f"{len(self.frames)} frames but states of shape {self.states.shape}")

    @property
    def success_step(self) -> int | None:
        return first_success_step(self.step_success)


class ClipDataset(Dataset):
    """Every window of every episode: items are {"clip": uint8 (F, S, S, 3), "label": float}, and
    with ``state_targets`` also "state" (D,) float32, the standardised state at the clip's end."""

    def __init__(
        self,
        episodes: Sequence[LabelledEpisode],
        clip_frames: int,
        stride: int,
        state_targets: StateTargets | None = None,
    ) -> None:
        self.episodes = list(episodes)
        self.clip_frames, self.stride = clip_frames, stride
        if state_targets is not None and any(e.states is None for e in self.episodes):
            raise ValueError("state targets need the states of every episode")
        self.state_targets = state_targets
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
        episode = self.episodes[e]
        frames = episode.frames[clip_indices(end, self.clip_frames, self.stride)]
        out = {"clip": torch.from_numpy(np.ascontiguousarray(frames)), "label": torch.tensor(float(self.labels[item]))}
        if self.state_targets is not None:
            assert episode.states is not None  # checked in __init__
            out["state"] = torch.from_numpy(self.state_targets(episode.states[end]))
        return out

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
