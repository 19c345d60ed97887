"""The episode loop used by data collection: run an expert and record robomimic-style arrays.

Only states are recorded, never images: frames are rendered later from the stored states (a
restored state renders exactly the frame the live episode would have shown), which keeps
collection ≈5× faster and lets image size and cameras be chosen after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from wmpo_cli.envs.experts import ScriptedExpert
    from wmpo_cli.envs.sim import SimEnv


@dataclass
class EpisodeRecord:
    """One recorded episode; index t refers to the state *before* action t.

    Attributes:
        seed: the reset seed (the initial state is a function of task, variant, scenario and seed).
        states: (T, S) float64 flattened MuJoCo states; frame t shows states[t].
        actions: (T, 7) float64, exactly the actions applied.
        rewards: (T,) float64, the sparse reward after action t (robomimic convention).
        dones: (T,) uint8, 1 on the last step.
        success_flags: (T,) bool, task success of states[t].
        proprio: per proprio key, (T, d) float64 observations at states[t].
        success: whether any state was a success.
        success_step: first t with success_flags[t], or None.
        model_xml: MuJoCo XML of the model the states belong to.
    """

    seed: int
    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    success_flags: np.ndarray
    proprio: dict[str, np.ndarray]
    success: bool
    success_step: int | None
    model_xml: str

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def run_expert_episode(
    env: SimEnv,
    expert: ScriptedExpert,
    seed: int,
    horizon: int,
    hold_steps: int = 10,
    initial_state: np.ndarray | None = None,
) -> EpisodeRecord:
    """Run ``expert`` on ``env`` from ``reset(seed)`` and record the episode.

    The loop stops, before acting, as soon as the last ``hold_steps`` recorded frames all show
    success (the task is solved and stays solved); when the expert has finished and a further
    ``2 * hold_steps`` steps passed without success (a failure); or after ``horizon`` steps.
    The expert's noise generator is seeded from ``seed`` so an episode is reproducible.
    With ``initial_state`` (a fixed initial-state set) the episode starts there instead of at
    ``reset(seed)``; ``seed`` then only drives the expert.

    ``expert`` is anything with the :class:`ScriptedExpert` protocol (``reset``, ``act``,
    ``done``): a scripted expert or the MimicGen-style trajectory generator.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if hold_steps < 1:
        raise ValueError(f"hold_steps must be >= 1, got {hold_steps}")
    obs = env.reset(seed) if initial_state is None else env.reset_to(initial_state)
    # A child stream of the seed: independent of the env's own draws, but fixed by the seed.
    expert.reset(env, np.random.default_rng([int(seed), 1]))

    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    rewards: list[float] = []
    flags: list[bool] = []
    proprio: dict[str, list[np.ndarray]] = {key: [] for key in env.proprio_keys}
    success_run = 0  # consecutive successful frames at the end of the record
    steps_since_done: int | None = None

    for _ in range(horizon):
        success = env.is_success()
        if success_run >= hold_steps:
            break
        if steps_since_done is not None and steps_since_done >= 2 * hold_steps and not success:
            break
        states.append(env.get_state())
        flags.append(success)
        for key in env.proprio_keys:
            proprio[key].append(np.asarray(obs[key], dtype=np.float64).copy())
        success_run = success_run + 1 if success else 0

        action = np.asarray(expert.act(env), dtype=np.float64)
        obs, reward = env.step(action)
        actions.append(action)
        rewards.append(reward)
        if expert.done:
            steps_since_done = 0 if steps_since_done is None else steps_since_done + 1

    return EpisodeRecord(**record_fields(env, seed, states, actions, rewards, flags, proprio))


def record_fields(
    env: SimEnv,
    seed: int,
    states: list[Any],
    actions: list[Any],
    rewards: list[float],
    flags: list[bool],
    proprio: dict[str, list[Any]],
) -> dict[str, Any]:
    """The :class:`EpisodeRecord` fields from per-step lists (shared by expert and policy episodes):
    float64 arrays, ``dones`` set on the last step, and the first success step."""
    n = len(actions)
    dones = np.zeros(n, dtype=np.uint8)
    if n:
        dones[-1] = 1
    success_flags = np.asarray(flags, dtype=bool)
    first = np.flatnonzero(success_flags)
    return {
        "seed": int(seed),
        "states": np.asarray(states, dtype=np.float64),
        "actions": np.asarray(actions, dtype=np.float64).reshape(n, -1),
        "rewards": np.asarray(rewards, dtype=np.float64),
        "dones": dones,
        "success_flags": success_flags,
        "proprio": {k: np.asarray(v, dtype=np.float64) for k, v in proprio.items()},
        "success": bool(first.size),
        "success_step": int(first[0]) if first.size else None,
        "model_xml": env.model_xml(),
    }
