"""Window labelling and finish-step detection of the reward model on hand-made episodes."""

from __future__ import annotations

import numpy as np
import pytest

from wmpo_cli.models.reward_model.windows import (
    clip_indices,
    clip_span,
    first_success_step,
    first_window_above,
    window_end_steps,
    window_labels,
)


def test_clip_span_and_indices() -> None:
    assert clip_span(8, 1) == 8 and clip_span(8, 2) == 15 and clip_span(1, 5) == 1
    assert clip_indices(7, 8, 1).tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert clip_indices(20, 4, 3).tolist() == [11, 14, 17, 20]
    # Before the first full clip, indices clamp to frame 0 (the world model pads the same way).
    assert clip_indices(2, 4, 1).tolist() == [0, 0, 1, 2]
    with pytest.raises(ValueError):
        clip_span(0, 1)


def test_window_end_steps() -> None:
    assert window_end_steps(12, 8, 1).tolist() == [7, 8, 9, 10, 11]
    assert window_end_steps(8, 8, 1).tolist() == [7]
    # Shorter than one clip: a single padded window ending at the last step.
    assert window_end_steps(5, 8, 1).tolist() == [4]
    assert window_end_steps(0, 8, 1).tolist() == []
    assert window_end_steps(20, 4, 3).tolist() == [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]


def test_labels_of_an_expert_episode_that_holds_its_success() -> None:
    # 14 steps; success first shown at step 10 and held to the end (an expert episode).
    success = np.zeros(14, dtype=bool)
    success[10:] = True
    assert window_labels(success, 8, 1).tolist() == [False, False, False, True, True, True, True]
    assert first_success_step(success) == 10


def test_labels_of_a_policy_success_that_ends_on_its_success_frame() -> None:
    # Eval/policy rollouts stop at the first success: only the last frame shows it.
    success = np.zeros(11, dtype=bool)
    success[-1] = True
    assert window_labels(success, 8, 1).tolist() == [False, False, False, True]
    assert first_success_step(success) == 10


def test_labels_follow_the_end_step_not_the_clip_contents() -> None:
    # A success that is lost again (a tower knocked over): only windows ending on success frames
    # are positive, with a stride of 2 between clip frames.
    success = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 1], dtype=bool)
    assert window_end_steps(10, 3, 2).tolist() == [4, 5, 6, 7, 8, 9]
    assert window_labels(success, 3, 2).tolist() == [False, True, True, False, False, True]
    assert first_success_step(np.zeros(4, dtype=bool)) is None


def test_first_window_above_edge_cases() -> None:
    ends = window_end_steps(12, 8, 1)  # [7, 8, 9, 10, 11]
    # No success anywhere.
    assert first_window_above(np.array([0.1, 0.2, 0.3, 0.2, 0.1]), ends, 0.5) is None
    # Success already in the first window: the finish step is that window's end step.
    assert first_window_above(np.array([0.9, 0.2, 0.95, 0.2, 0.1]), ends, 0.5) == 7
    # Success only at the last step.
    assert first_window_above(np.array([0.1, 0.2, 0.3, 0.2, 0.6]), ends, 0.5) == 11
    # The threshold itself counts as success.
    assert first_window_above(np.array([0.1, 0.5, 0.3, 0.2, 0.6]), ends, 0.5) == 8
    assert first_window_above(np.zeros(0), np.zeros(0, dtype=np.int64), 0.5) is None
