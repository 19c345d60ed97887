"""Imitation-learning samples: one observation and the next K actions as tokens.

Arrays live in memory (64 px frames of a few hundred demos are a few hundred MB), and a sample
is just an index into them, so a batch is gathered with a handful of tensor ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from wmpo_cli.models.policy.action_tokens import ActionTokenizer
from wmpo_cli.models.state_targets import StateTargets


def chunk_targets(actions: np.ndarray, chunk: int) -> np.ndarray:
    """(T, D) actions -> (T, chunk, D): the ``chunk`` actions from each step on.

    Past the end of the episode the arm holds still (zero motion) and the gripper keeps its
    last command, which is what a finished demonstration would do next.
    """
    actions = np.asarray(actions, dtype=np.float64)
    steps, dims = actions.shape
    hold = np.zeros(dims)
    hold[-1] = actions[-1, -1] if steps else 0.0
    padded = np.concatenate([actions, np.repeat(hold[None], chunk - 1, axis=0)], axis=0)
    index = np.arange(steps)[:, None] + np.arange(chunk)[None, :]
    return padded[index]


@dataclass
class EpisodeArrays:
    """What training needs of one episode: frames per camera, actions, optional proprio and states."""

    frames: dict[str, np.ndarray]  # camera -> (T, H, W, 3) uint8
    actions: np.ndarray  # (T, D)
    proprio: dict[str, np.ndarray] | None = None  # proprio key -> (T, d)
    states: np.ndarray | None = None  # (T, S) simulator states, for the auxiliary state loss


class ChunkDataset(Dataset[dict[str, torch.Tensor]]):
    """Every step of every episode: frames, proprio and the (K*D,) token targets.

    With ``state_targets`` an item also holds "state", the standardised simulator state that
    frame shows (the auxiliary target of :class:`~wmpo_cli.models.state_targets.StateTargets`).
    """

    def __init__(
        self,
        episodes: Sequence[EpisodeArrays],
        cameras: Sequence[str],
        tokenizer: ActionTokenizer,
        chunk: int,
        proprio_keys: Sequence[str] = (),
        state_targets: StateTargets | None = None,
    ) -> None:
        if not episodes:
            raise ValueError("no episodes to learn from")
        if state_targets is not None and any(ep.states is None for ep in episodes):
            raise ValueError("auxiliary state targets need the states of every episode")
        self.frames = {
            camera: torch.from_numpy(np.concatenate([ep.frames[camera] for ep in episodes])) for camera in cameras
        }
        targets = np.concatenate([chunk_targets(ep.actions, chunk) for ep in episodes])
        self.tokens = torch.from_numpy(tokenizer.encode(targets).reshape(len(targets), -1))
        self.actions = torch.from_numpy(targets.reshape(len(targets), -1)).float()
        # Raw proprio values under their observation keys; the policy normalises them itself.
        self.proprio = {
            key: torch.from_numpy(np.concatenate([(ep.proprio or {})[key] for ep in episodes])).float()
            for key in proprio_keys
        }
        self.states = (
            torch.from_numpy(np.concatenate([state_targets(ep.states) for ep in episodes if ep.states is not None]))
            if state_targets is not None
            else None
        )
        self.cameras = tuple(cameras)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {f"{camera}_image": self.frames[camera][index] for camera in self.cameras}
        item["tokens"] = self.tokens[index]
        item["actions"] = self.actions[index]
        for key, values in self.proprio.items():
            item[key] = values[index]
        if self.states is not None:
            item["state"] = self.states[index]
        return item
