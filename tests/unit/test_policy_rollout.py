"""The policy episode loop on a scripted fake env and policy: protocol and recording convention."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from wmpo_cli.envs.policy_rollout import WARMUP_ACTION, run_policy_episode, sampling_seed
from wmpo_cli.errors import RenderError


class FakeEnv:
    """A counter 'simulator': the state is (steps since reset, seed); success from step ``success_at``."""

    proprio_keys = ("robot0_eef_pos",)

    def __init__(self, success_at: int | None, blank_renders: int = 0) -> None:
        self.success_at = success_at
        self.blank_renders = blank_renders
        self.t = 0
        self.seed = -1
        self.applied: list[np.ndarray] = []
        self.resets: list[str] = []

    def _obs(self) -> dict[str, np.ndarray]:
        return {"robot0_eef_pos": np.array([self.t, 0.0, 0.0])}

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        self.t, self.seed, self.applied = 0, seed, []
        self.resets.append("reset")
        return self._obs()

    def reset_to(self, state: np.ndarray) -> dict[str, np.ndarray]:
        self.resets.append("reset_to")
        return self.restore(state)

    def restore(self, state: np.ndarray) -> dict[str, np.ndarray]:
        self.t, self.seed = int(state[0]), int(state[1])
        return self._obs()

    def get_state(self) -> np.ndarray:
        return np.array([self.t, self.seed], dtype=np.float64)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
        self.applied.append(np.asarray(action))
        self.t += 1
        return self._obs(), float(self.is_success())

    def is_success(self) -> bool:
        return self.success_at is not None and self.t >= self.success_at

    def render(self, camera: str, size: int | None = None) -> np.ndarray:
        side = int(size or 8)
        if self.blank_renders > 0:
            self.blank_renders -= 1
            return np.zeros((side, side, 3), dtype=np.uint8)
        frame = np.tile(np.arange(side, dtype=np.uint8)[None, :, None] * 10, (side, 1, 3))
        frame[0, 0, 0] = self.t  # the frame shows the state it was rendered in
        return frame

    def model_xml(self) -> str:
        return "<mujoco/>"


@dataclass(frozen=True)
class FakeCfg:
    cameras: tuple[str, ...] = ("agentview",)
    chunk: int = 8
    action_dim: int = 7
    proprio_keys: tuple[str, ...] = ()


@dataclass
class FakeOut:
    actions: np.ndarray
    tokens: torch.Tensor
    log_prob: torch.Tensor


class FakePolicy:
    """Chunk c holds actions whose first dim is 100*c + k (k = position in the chunk)."""

    def __init__(self) -> None:
        self.cfg = FakeCfg()
        self.calls: list[dict] = []

    def act(self, obs, *, greedy=True, temperature=1.0, instruction=None, generator=None, decoding="argmax") -> FakeOut:
        self.calls.append(
            {"obs": obs, "greedy": greedy, "temperature": temperature, "generator": generator, "decoding": decoding}
        )
        c = len(self.calls) - 1
        tokens = torch.arange(56).view(1, 56) if greedy else torch.randint(0, 256, (1, 56), generator=generator)
        actions = np.zeros((1, 8, 7))
        actions[0, :, 0] = 100 * c + np.arange(8)
        actions[0, :, 1] = tokens[0, :8].numpy()
        return FakeOut(actions, tokens, torch.full((1, 56), -1.0))


def _run(env: FakeEnv, policy: FakePolicy, **kwargs):
    args = {"seed": 3, "max_steps": 40, "warmup_steps": 10, "cameras": ("agentview",), "image_size": 8}
    args.update(kwargs)
    return run_policy_episode(env, policy, **args)


def test_success_ends_the_episode_with_the_success_state_recorded_last() -> None:
    env, policy = FakeEnv(success_at=10 + 11), FakePolicy()
    record, images = _run(env, policy)
    # 11 actions reach success; the success state is entry 11, with the action taken there.
    assert (len(record), record.success, record.success_step) == (12, True, 11)
    assert record.success_flags.tolist() == [False] * 11 + [True]
    assert record.states[:, 0].tolist() == list(range(10, 22))  # entry 0 is the post-warm-up state
    assert images["agentview"].shape == (12, 8, 8, 3)
    assert images["agentview"][:, 0, 0, 0].tolist() == list(range(10, 22))  # frame t shows state t
    # Warm-up: 10 dummy actions, not recorded; then every recorded action was applied, in order.
    assert all(np.array_equal(a, WARMUP_ACTION) for a in env.applied[:10])
    np.testing.assert_array_equal(np.asarray(env.applied[10:]), record.actions)
    assert record.actions[:, 0].tolist() == [*range(8), 100, 101, 102, 103]
    assert record.dones.tolist() == [0] * 11 + [1]
    assert record.rewards.tolist() == [0.0] * 10 + [1.0, 1.0]
    assert (record.env_steps, record.warmup_steps) == (22, 10)
    assert record.chunk_starts.tolist() == [0, 8] and record.chunk_tokens.shape == (2, 56)
    assert record.proprio["robot0_eef_pos"][:, 0].tolist() == list(range(10, 22))
    # Reset, then the post-warm-up state is made the canonical start.
    assert env.resets == ["reset", "reset_to"]


def test_policy_is_queried_on_the_current_frame_every_chunk() -> None:
    env, policy = FakeEnv(success_at=None), FakePolicy()
    record, images = _run(env, policy, max_steps=20)
    assert len(policy.calls) == 3 and record.chunk_starts.tolist() == [0, 8, 16]
    for start, call in zip([0, 8, 16], policy.calls, strict=True):
        assert set(call["obs"]) == {"agentview_image"}
        np.testing.assert_array_equal(call["obs"]["agentview_image"], images["agentview"][start])
        assert call["greedy"] is True and call["generator"] is None and call["decoding"] == "argmax"
    _run(FakeEnv(success_at=None), policy, max_steps=4, decoding="median")
    assert policy.calls[-1]["decoding"] == "median"


def test_recorded_frames_may_be_larger_than_what_the_policy_sees() -> None:
    env, policy = FakeEnv(success_at=None), FakePolicy()
    record, images = _run(env, policy, max_steps=20, record_size=16)
    assert images["agentview"].shape == (20, 16, 16, 3)
    assert images["agentview"][:, 0, 0, 0].tolist() == list(range(10, 30))  # frame t shows state t
    for start, call in zip([0, 8, 16], policy.calls, strict=True):
        # The policy's frame is a native 8 px render of the same state, not a resize of the record.
        native = np.tile(np.arange(8, dtype=np.uint8)[None, :, None] * 10, (8, 1, 3))
        native[0, 0, 0] = 10 + start
        np.testing.assert_array_equal(call["obs"]["agentview_image"], native)
    # The same episode as without --record-size: only the recorded frames differ.
    same, _ = _run(FakeEnv(success_at=None), FakePolicy(), max_steps=20)
    np.testing.assert_array_equal(same.actions, record.actions)


def test_a_hold_records_entries_past_the_first_success_and_keeps_its_step() -> None:
    env, policy = FakeEnv(success_at=10 + 11), FakePolicy()
    record, images = _run(env, policy, hold_steps=4)
    # Success first at entry 11; entries 11..14 are the hold, each with the action taken there.
    assert (len(record), record.success, record.success_step) == (15, True, 11)
    assert record.success_flags.tolist() == [False] * 11 + [True] * 4
    assert record.actions[:, 0].tolist() == [*range(8), *range(100, 107)]
    assert images["agentview"][:, 0, 0, 0].tolist() == list(range(10, 25))
    # A success on the last allowed action is still held, past max_steps.
    late, _ = _run(FakeEnv(success_at=10 + 12), FakePolicy(), max_steps=12, hold_steps=3)
    assert (len(late), late.success_step, late.success_flags.sum()) == (15, 12, 3)


def test_step_limit_counts_actions_and_a_success_on_the_last_one_counts() -> None:
    just_in_time, _ = _run(FakeEnv(success_at=10 + 12), FakePolicy(), max_steps=12)
    assert (just_in_time.success, just_in_time.success_step, len(just_in_time)) == (True, 12, 13)
    too_late, _ = _run(FakeEnv(success_at=10 + 13), FakePolicy(), max_steps=12)
    assert (too_late.success, too_late.success_step, len(too_late)) == (False, None, 12)
    assert too_late.success_flags.sum() == 0 and too_late.dones.tolist() == [0] * 11 + [1]


def test_a_successful_start_state_is_one_entry() -> None:
    record, _ = _run(FakeEnv(success_at=5), FakePolicy())
    assert (len(record), record.success_step) == (1, 0)


def test_initial_state_replaces_the_seeded_reset() -> None:
    env = FakeEnv(success_at=None)
    record, _ = _run(env, FakePolicy(), max_steps=3, initial_state=np.array([50.0, 7.0]))
    assert env.resets == ["reset_to", "reset_to"]
    assert record.states[0].tolist() == [60.0, 7.0]


def test_sampling_is_a_pure_function_of_the_seed() -> None:
    def tokens(seed: int) -> np.ndarray:
        policy = FakePolicy()
        record, _ = _run(FakeEnv(success_at=None), policy, seed=seed, max_steps=16, temperature=1.6)
        assert all(not c["greedy"] and c["temperature"] == 1.6 for c in policy.calls)
        return record.chunk_tokens

    np.testing.assert_array_equal(tokens(3), tokens(3))
    assert not np.array_equal(tokens(3), tokens(4))
    expected = torch.randint(0, 256, (1, 56), generator=torch.Generator().manual_seed(sampling_seed(3)))
    np.testing.assert_array_equal(tokens(3)[0], expected[0].numpy())


def test_blank_frames_are_rendered_again_or_fail_loudly() -> None:
    record, images = _run(FakeEnv(success_at=None, blank_renders=2), FakePolicy(), max_steps=4)
    assert record.rerendered == 2 and images["agentview"].std(axis=(1, 2, 3)).min() > 1
    with pytest.raises(RenderError, match="blank frame"):
        _run(FakeEnv(success_at=None, blank_renders=100), FakePolicy(), max_steps=4)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        _run(FakeEnv(None), FakePolicy(), max_steps=0)
    with pytest.raises(ValueError, match="agentview"):
        _run(FakeEnv(None), FakePolicy(), cameras=("robot0_eye_in_hand",))
    with pytest.raises(ValueError, match="hold_steps must be >= 1"):
        _run(FakeEnv(None), FakePolicy(), hold_steps=0)
