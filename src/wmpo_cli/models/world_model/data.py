"""Training windows for the world model: H context frames, the next F actions and their F frames.

Episodes store ``obs[t]`` (the frame seen before action ``t``) and ``actions[t]``. A window that
starts at step ``s`` holds context frames ``s-H+1 .. s`` (frame 0 repeated when ``s < H-1``, as
WMPO pads, which is also how imagination starts: H copies of the first real frame), actions
``s .. s+F-1`` and target frames ``s+1 .. s+F``. Every start with all F targets recorded is used
(stride 1, not aligned to chunk boundaries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass(frozen=True)
class EpisodeFrames:
    """One episode's frames (T, S, S, 3) uint8 and its environment actions (T, D)."""

    frames: np.ndarray
    actions: np.ndarray

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.actions):
            raise ValueError(f"{len(self.frames)} frames but {len(self.actions)} actions")


def window_starts(length: int, predict_frames: int) -> range:
    """Start steps of the windows of an episode of ``length`` steps (its last frame has no successor)."""
    return range(max(0, length - predict_frames))


def window_indices(length: int, start: int, context_frames: int, predict_frames: int) -> tuple[list[int], list[int]]:
    """(context frame indices, target frame indices) of the window starting at ``start``."""
    if not 0 <= start < length - predict_frames:
        raise ValueError(f"start {start} has no {predict_frames} successors in an episode of {length} steps")
    context = [max(0, start - context_frames + 1 + i) for i in range(context_frames)]
    target = [start + 1 + j for j in range(predict_frames)]
    return context, target


def to_unit(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (..., S, S, 3) frames -> float (..., 3, S, S) in [-1, 1]."""
    tensor = torch.as_tensor(frames)
    return tensor.movedim(-1, -3).float().div(127.5).sub(1.0)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float (..., 3, S, S) frames in [-1, 1] -> uint8 (..., S, S, 3)."""
    scaled = frames.detach().float().clamp(-1, 1).add(1.0).mul(127.5).round()
    return scaled.movedim(-3, -1).to(torch.uint8).cpu().numpy()


class WindowDataset(Dataset):
    """All windows of a list of episodes; items are dicts of tensors ready for ``WorldModel.loss``."""

    def __init__(
        self,
        episodes: Sequence[EpisodeFrames],
        normalised_actions: Sequence[np.ndarray],
        context_frames: int,
        predict_frames: int,
    ) -> None:
        self.episodes = list(episodes)
        self.actions = [np.asarray(a, dtype=np.float32) for a in normalised_actions]
        self.context_frames, self.predict_frames = context_frames, predict_frames
        self.index = np.array(
            [(e, s) for e, ep in enumerate(self.episodes) for s in window_starts(len(ep.frames), predict_frames)],
            dtype=np.int64,
        ).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        e, s = (int(v) for v in self.index[item])
        episode = self.episodes[e]
        context, target = window_indices(len(episode.frames), s, self.context_frames, self.predict_frames)
        return {
            "context": to_unit(episode.frames[context]),
            "target": to_unit(episode.frames[target]),
            "actions": torch.from_numpy(self.actions[e][s : s + self.predict_frames]),
        }
