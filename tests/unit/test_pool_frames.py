"""Worker pool ordering/stopping and the frame sanity checks of the renderer."""

from __future__ import annotations

import numpy as np
import pytest

from wmpo_cli.envs.frames import is_blank, render_states
from wmpo_cli.envs.pool import run_jobs
from wmpo_cli.errors import RenderError


def _square(x: int) -> int:
    return x * x


def test_run_jobs_in_process_and_in_pool_give_the_same_results() -> None:
    assert list(run_jobs(_square, range(5), workers=1)) == [0, 1, 4, 9, 16]
    assert sorted(run_jobs(_square, range(7), workers=2)) == [0, 1, 4, 9, 16, 25, 36]


def test_run_jobs_stops_submitting_when_told() -> None:
    seen: list[int] = []
    for value in run_jobs(_square, range(100), workers=1, should_stop=lambda: len(seen) >= 3):
        seen.append(value)
    assert seen == [0, 1, 4]


class FlakyRenderer:
    """A renderer that returns blank frames on its first calls (the OSMesa start-up glitch)."""

    def __init__(self, blank_calls: int) -> None:
        self.blank_calls = blank_calls
        self.calls = 0
        self.state = np.zeros(1)

    def restore(self, state: np.ndarray) -> None:
        self.state = state

    def render(self, camera: str, size: int | None = None) -> np.ndarray:
        self.calls += 1
        if self.calls <= self.blank_calls:
            return np.zeros((4, 4, 3), dtype=np.uint8)
        frame = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
        return frame + np.uint8(self.state[0])


def test_blank_frames_are_rerendered_and_counted() -> None:
    states = np.arange(5, dtype=float)[:, None]
    env = FlakyRenderer(blank_calls=2)
    out = render_states(env, states, ["agentview"], 4, retries=3)
    assert out.rerendered == 2
    assert not any(is_blank(frame) for frame in out.images["agentview"])
    np.testing.assert_array_equal(out.images["agentview"][3], np.arange(48, dtype=np.uint8).reshape(4, 4, 3) + 3)


def test_a_renderer_that_stays_blank_is_an_error_not_a_dataset() -> None:
    env = FlakyRenderer(blank_calls=10**6)
    with pytest.raises(RenderError, match="camera 'agentview' returned a blank frame at step 0"):
        render_states(env, np.zeros((3, 1)), ["agentview"], 4, retries=2)
    assert env.calls == 3


def test_is_blank() -> None:
    assert is_blank(np.full((8, 8, 3), 17, dtype=np.uint8))
    assert not is_blank(np.arange(192, dtype=np.uint8).reshape(8, 8, 3))
