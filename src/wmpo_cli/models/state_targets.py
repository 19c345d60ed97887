"""Standardised simulator states as an auxiliary training target (reward model and policy).

Why: from a few hundred episodes a network trained on its main objective alone learns shortcuts
instead of the few pixels that matter. A reward model trained on the success label learns how
high the arm is rather than whether the cube came up with it; a behaviour-cloned policy learns
the demonstrations' average path rather than where the cubes are (a 4 cm cube is 3-4 pixels of
a 64 px frame). Regressing the scene's state, object poses included, from the same frames makes
the features locate the objects; the main head then reads them. The targets come from the stored
states, so they cost nothing to collect, and they are used in training only: exports, acting and
scoring never see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class HasStates(Protocol):
    """An episode that may carry its (T, D) simulator states (``None`` = not loaded)."""

    @property
    def states(self) -> np.ndarray | None: ...


@dataclass(frozen=True)
class StateTargets:
    """Per-column standardisation of the stored state ``[time, qpos, qvel]``.

    Column 0 (the simulation time) is left out: a frame cannot show it. Columns that never vary
    in training are left out too (nothing to learn, and no scale to divide by).
    """

    columns: np.ndarray  # (D,) int64 indices into the stored state
    mean: np.ndarray  # (D,) float32
    std: np.ndarray  # (D,) float32

    @classmethod
    def fit(cls, episodes: Sequence[HasStates]) -> StateTargets:
        with_states = [e.states for e in episodes if e.states is not None]
        widths = {s.shape[1] for s in with_states}
        if len(widths) != 1:
            raise ValueError(f"auxiliary state targets need states of one width in every episode, got {sorted(widths)}")
        stacked = np.concatenate(with_states).astype(np.float64)
        std = stacked.std(axis=0)
        columns = np.flatnonzero(std > 1e-6)
        columns = columns[columns > 0]
        if columns.size == 0:
            raise ValueError("auxiliary state targets: no state column varies in the training episodes")
        return cls(
            columns.astype(np.int64), stacked.mean(0)[columns].astype(np.float32), std[columns].astype(np.float32)
        )

    @property
    def width(self) -> int:
        return int(self.columns.size)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        """(..., S) stored states -> (..., D) standardised float32 targets."""
        values = np.asarray(state, dtype=np.float64)[..., self.columns]
        return ((values - self.mean) / self.std).astype(np.float32)
