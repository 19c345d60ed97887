"""Discrete action tokens, as OpenVLA(-OFT) uses them.

Each action dimension is normalised by the training data's 1 % and 99 % quantiles to [-1, 1]
(so rare outliers do not stretch the range), clipped, and split into ``bins`` equal bins; a token
is a bin index and decodes to its bin centre. The statistics are part of the exported policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_BINS = 256
LOW_QUANTILE = 0.01
HIGH_QUANTILE = 0.99


@dataclass(frozen=True)
class ActionTokenizer:
    """Per-dimension quantile normalisation plus uniform binning.

    Attributes:
        low: (D,) the 1 % quantile of each action dimension in the training data.
        high: (D,) the 99 % quantile.
        bins: tokens per dimension.
    """

    low: np.ndarray
    high: np.ndarray
    bins: int = DEFAULT_BINS

    @classmethod
    def fit(cls, actions: np.ndarray, bins: int = DEFAULT_BINS) -> ActionTokenizer:
        """Statistics from (N, D) training actions."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or len(actions) == 0:
            raise ValueError(f"expected (N, D) actions, got shape {actions.shape}")
        low = np.quantile(actions, LOW_QUANTILE, axis=0)
        high = np.quantile(actions, HIGH_QUANTILE, axis=0)
        # A constant dimension (e.g. a gripper always closed) would divide by zero; give it a unit range.
        same = high - low < 1e-8
        low, high = np.where(same, low - 1.0, low), np.where(same, high + 1.0, high)
        return cls(low=low, high=high, bins=int(bins))

    def normalise(self, actions: np.ndarray) -> np.ndarray:
        """Actions mapped to [-1, 1] (clipped)."""
        scaled = 2.0 * (np.asarray(actions, dtype=np.float64) - self.low) / (self.high - self.low) - 1.0
        return np.clip(scaled, -1.0, 1.0)

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """(..., D) actions -> (..., D) int64 tokens in [0, bins)."""
        unit = (self.normalise(actions) + 1.0) / 2.0
        return np.minimum((unit * self.bins).astype(np.int64), self.bins - 1)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """(..., D) tokens -> (..., D) actions at the bin centres."""
        tokens = np.asarray(tokens)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.bins):
            raise ValueError(f"tokens must be in [0, {self.bins})")
        unit = (tokens.astype(np.float64) + 0.5) / self.bins
        return self.low + unit * (self.high - self.low)

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low.tolist(), "high": self.high.tolist(), "bins": self.bins}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionTokenizer:
        try:
            low, high = np.asarray(data["low"], dtype=np.float64), np.asarray(data["high"], dtype=np.float64)
            bins = int(data["bins"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"action normalisation statistics are missing or malformed ({exc})") from None
        if low.shape != high.shape or low.ndim != 1 or bins < 2 or np.any(high <= low):
            raise ValueError("action normalisation statistics are malformed")
        return cls(low=low, high=high, bins=bins)
