"""Sliding clips over an episode's frames, and their success labels.

A clip of ``clip_frames`` frames taken every ``stride`` steps spans ``(clip_frames - 1) * stride + 1``
steps. The clip that *ends* at step ``t`` holds frames ``t - (clip_frames - 1) * stride, ..., t``;
it is labelled positive iff the task is succeeded at ``t`` (``step_success[t]``, what frame ``t``
shows), so the classifier learns "does the latest frame show the finished task, given the motion
that led to it". Windows slide with stride 1 over end steps ``span - 1 .. T - 1``; an episode
shorter than one span gets a single clip ending at its last step, padded at the start with
copies of frame 0 (as the world model pads its context). The finish step that the first
positive window sets is that window's end step.
"""

from __future__ import annotations

import numpy as np


def clip_span(clip_frames: int, stride: int) -> int:
    """Steps covered by one clip."""
    if clip_frames < 1 or stride < 1:
        raise ValueError(f"clip_frames and stride must be >= 1, got {clip_frames} and {stride}")
    return (clip_frames - 1) * stride + 1


def window_end_steps(length: int, clip_frames: int, stride: int) -> np.ndarray:
    """End step of every window of an episode of ``length`` frames, in order (empty for length 0)."""
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if length == 0:
        return np.zeros(0, dtype=np.int64)
    first = min(clip_span(clip_frames, stride) - 1, length - 1)
    return np.arange(first, length, dtype=np.int64)


def clip_indices(end: int, clip_frames: int, stride: int) -> np.ndarray:
    """Frame indices of the clip ending at ``end`` (indices before 0 clamp to frame 0)."""
    if end < 0:
        raise ValueError(f"end must be >= 0, got {end}")
    offsets = np.arange(-(clip_frames - 1) * stride, 1, stride, dtype=np.int64)
    return np.maximum(end + offsets, 0)


def window_labels(step_success: np.ndarray, clip_frames: int, stride: int) -> np.ndarray:
    """(num_windows,) bool labels: window ``i`` (ending at ``window_end_steps[i]``) is positive iff
    the task is succeeded at its end step."""
    flags = np.asarray(step_success, dtype=bool)
    return flags[window_end_steps(len(flags), clip_frames, stride)]


def first_success_step(step_success: np.ndarray) -> int | None:
    """The first step whose frame shows success (the true finish step), or None."""
    hits = np.flatnonzero(np.asarray(step_success, dtype=bool))
    return int(hits[0]) if hits.size else None


def first_window_above(probabilities: np.ndarray, end_steps: np.ndarray, threshold: float) -> int | None:
    """End step of the earliest window whose probability reaches ``threshold``, or None."""
    above = np.flatnonzero(np.asarray(probabilities) >= threshold)
    return int(end_steps[above[0]]) if above.size else None
