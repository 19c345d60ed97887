"""The episode loop of a learned policy: warm-up, then action chunks from live camera frames.

Unlike expert collection (:mod:`wmpo_cli.envs.rollout`), frames are rendered during the episode,
because the policy acts on them. The protocol follows WMPO's evaluation (OpenVLA-OFT's LIBERO /
MimicGen loop):

1. ``reset(seed)`` or ``reset_to(initial_state)``;
2. ``warmup_steps`` steps of the dummy action ``[0, 0, 0, 0, 0, 0, -1]`` (arm still, gripper
   open) while objects settle; these steps are not recorded;
3. the post-warm-up state is made the episode's canonical start (see :func:`run_policy_episode`),
   then every ``chunk`` steps the policy is queried on the current frames and its ``chunk``
   actions are executed one by one;
4. the episode ends at the first success (or, with ``hold_steps`` = N > 1, after N entries from
   the first success on, the policy still acting, as expert collection holds), or after
   ``max_steps`` actions without success.

Recording convention (the same as :class:`~wmpo_cli.envs.rollout.EpisodeRecord`): entry t holds
state t, its frames and the action applied in it. On success the success state is recorded as
the last entry, together with the action the policy chose there (applied, its result not
recorded, as for the last action of an expert episode), so the last frame of a successful
episode shows the success: it has ``success_step + 1`` entries and ``success_step`` is the number
of actions the policy needed (``success_step + hold_steps`` entries with a hold; the success
flags of the held entries are what the simulator says, the cube may drop again). A failed
episode has ``max_steps`` entries.

A rollout is a pure function of (policy, initial state, seed): the environment is seeded by
``seed``, sampling at ``temperature > 0`` draws from a torch generator seeded from ``seed``, and
the caller keeps torch on one thread (see :func:`wmpo_cli.pipeline.policy_episodes.one_torch_thread`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from wmpo_cli.envs.frames import is_blank
from wmpo_cli.envs.rollout import EpisodeRecord, record_fields
from wmpo_cli.errors import RenderError

if TYPE_CHECKING:
    from wmpo_cli.envs.sim import SimEnv

# OpenVLA's LIBERO/MimicGen "wait" action: no arm motion, gripper commanded open.
WARMUP_ACTION = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])
# A separate stream of the episode seed for the policy's token draws (the expert uses [seed, 1]).
_SAMPLING_STREAM = 2


class ChunkPolicy(Protocol):
    """What the loop needs of a policy (``VLAPolicy`` has it); keeps envs/ free of models/.

    ``cfg`` names the ``cameras`` and ``proprio_keys`` the policy sees and its ``chunk`` length;
    ``act`` returns an object with ``actions`` (1, K, 7), ``tokens`` and ``log_prob`` (1, K*D).
    """

    cfg: Any

    def act(
        self,
        obs: Mapping[str, Any],
        *,
        greedy: bool = True,
        temperature: float = 1.0,
        instruction: str | None = None,
        generator: Any = None,
        decoding: str = "argmax",
    ) -> Any: ...


@dataclass
class PolicyEpisodeRecord(EpisodeRecord):
    """An :class:`EpisodeRecord` plus what the policy emitted, chunk by chunk (for RL).

    Attributes:
        chunk_starts: (C,) int64, the entry index at which chunk c was queried.
        chunk_tokens: (C, K*D) int64 action tokens of each chunk (all K actions, even those a
            finished episode never applied).
        chunk_log_probs: (C, K*D) float32 per-token log-probabilities at the sampling temperature.
        warmup_steps: dummy steps run before entry 0.
        env_steps: simulator steps in all (warm-up included).
        rerendered: frames rendered again because they came back blank, or episodes re-run
            because the renderer did not reproduce a frame (counted per frame).
        timings: seconds spent in ``physics_s`` (reset, warm-up, steps), ``render_s`` and
            ``policy_s`` (the policy's forward passes) in the episode's last run.
    """

    chunk_starts: np.ndarray
    chunk_tokens: np.ndarray
    chunk_log_probs: np.ndarray
    warmup_steps: int
    env_steps: int
    rerendered: int
    timings: dict[str, float]


def sampling_seed(seed: int) -> int:
    """Seed of the torch generator for the token draws of the episode with env seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), _SAMPLING_STREAM]).generate_state(1)[0])


def render_checked(env: SimEnv, camera: str, size: int, retries: int = 3) -> tuple[np.ndarray, int]:
    """One frame of ``camera``, re-rendered while it comes back blank: (frame, re-renders)."""
    frame = env.render(camera, size)
    attempts = 0
    while is_blank(frame) and attempts < retries:
        frame = env.render(camera, size)
        attempts += 1
    if is_blank(frame):
        raise RenderError(f"camera '{camera}' returned a blank frame, {retries} re-renders did not help")
    return frame, attempts


def start_episode(
    env: SimEnv, *, seed: int, warmup_steps: int = 10, initial_state: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Reset (or restore ``initial_state``), take the no-op warm-up steps, and return the observation.

    The post-warm-up state is made a canonical start (controller caches and gripper ramp rebuilt
    from the flat state), as after reset(): restoring states[0] and replaying the recorded actions
    then reproduces an episode exactly, and a policy starts where demos start.
    """
    if initial_state is None:
        env.reset(seed)
    else:
        env.reset_to(initial_state)
    for _ in range(warmup_steps):
        env.step(WARMUP_ACTION)
    return env.reset_to(env.get_state())


def run_policy_episode(
    env: SimEnv,
    policy: ChunkPolicy,
    *,
    seed: int,
    max_steps: int,
    warmup_steps: int = 10,
    temperature: float = 0.0,
    initial_state: np.ndarray | None = None,
    cameras: Sequence[str],
    image_size: int,
    instruction: str | None = None,
    render_retries: int = 3,
    record_size: int = 0,
    hold_steps: int = 1,
    decoding: str = "argmax",
) -> tuple[PolicyEpisodeRecord, dict[str, np.ndarray]]:
    """Run ``policy`` on ``env`` (module docstring: protocol and recording convention).

    Args:
        env: a simulator built with (at least) ``cameras``.
        policy: queried with ``{"<camera>_image": (H, W, 3) uint8}`` for its own cameras, plus its
            proprio keys from the env's observation.
        seed: reset seed (ignored for the start state when ``initial_state`` is given) and the
            source of the sampling generator.
        max_steps: most actions the policy may take before the episode counts as failed.
        warmup_steps: dummy steps before the first recorded state.
        temperature: 0 = greedy argmax; > 0 = one draw per token at this temperature.
        initial_state: start from this flat state (an initial-state set) instead of ``reset(seed)``.
        cameras: cameras rendered into the returned images (must include the policy's).
        image_size: square frame size of every camera, as the policy sees it.
        instruction: the instruction the policy is given (None = its training instruction).
        render_retries: re-renders of a blank frame, and re-runs of an episode whose frames the
            renderer does not reproduce, before giving up with a RenderError.
        record_size: the size of the returned frames (0 = ``image_size``). Another size renders
            each camera a second time, so the policy still acts on native ``image_size`` frames
            (a resize would change what it sees) while the episode keeps, e.g., 128 px frames
            for a reward model that needs the detail.
        hold_steps: entries recorded from the first success on (1 = stop there, WMPO's
            evaluation). More keep the success visible for several frames, as in expert demos
            and in imagination, which runs on until the reward model fires; the hold may run past
            ``max_steps``. Success and ``success_step`` are those of the first success either way.
        decoding: how a greedy policy picks each token ("argmax", the paper's, or "median"); it
            is passed to ``policy.act`` and unused when sampling (``temperature > 0``).

    Returns:
        The record and ``{camera: (T, S, S, 3) uint8}`` at ``S = record_size or image_size``,
        frame t showing ``record.states[t]``.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if warmup_steps < 0 or temperature < 0 or record_size < 0:
        raise ValueError("warmup_steps, temperature and record_size must be >= 0")
    if hold_steps < 1:
        raise ValueError(f"hold_steps must be >= 1, got {hold_steps}")
    missing = [camera for camera in policy.cfg.cameras if camera not in cameras]
    if missing:
        raise ValueError(f"the policy sees {', '.join(missing)}, which is not among the rendered cameras")
    rerendered = 0
    for attempt in range(render_retries + 1):
        record, images = _run_once(
            env,
            policy,
            seed=seed,
            max_steps=max_steps,
            warmup_steps=warmup_steps,
            temperature=temperature,
            initial_state=initial_state,
            cameras=tuple(cameras),
            image_size=image_size,
            record_size=record_size or image_size,
            hold_steps=hold_steps,
            decoding=decoding,
            instruction=instruction,
            render_retries=render_retries,
        )
        rerendered += record.rerendered
        # A garbled (not blank) frame would have steered the policy: the episode is a pure function
        # of its inputs, so a re-run with a working renderer gives the episode it should have been.
        if _frames_reproduce(env, record.states, images, record_size or image_size):
            record.rerendered = rerendered
            return record, images
        rerendered += len(record) * len(cameras)
        if attempt == render_retries:
            break
    raise RenderError(f"the renderer does not reproduce its own frames after {render_retries} episode re-runs")


def _frames_reproduce(env: SimEnv, states: np.ndarray, images: Mapping[str, np.ndarray], size: int) -> bool:
    """Re-render a few recorded states (restored) and compare with the live frames."""
    steps = len(states)
    for t in sorted({0, steps // 2, steps - 1}):
        env.restore(states[t])
        for camera, frames in images.items():
            if not np.array_equal(env.render(camera, size), frames[t]):
                return False
    return True


def _run_once(
    env: SimEnv,
    policy: ChunkPolicy,
    *,
    seed: int,
    max_steps: int,
    warmup_steps: int,
    temperature: float,
    initial_state: np.ndarray | None,
    cameras: tuple[str, ...],
    image_size: int,
    record_size: int,
    hold_steps: int,
    decoding: str,
    instruction: str | None,
    render_retries: int,
) -> tuple[PolicyEpisodeRecord, dict[str, np.ndarray]]:
    import torch

    clock = time.perf_counter
    timings = {"physics_s": 0.0, "render_s": 0.0, "policy_s": 0.0}
    mark = clock()
    obs = start_episode(env, seed=seed, warmup_steps=warmup_steps, initial_state=initial_state)
    timings["physics_s"] += clock() - mark

    generator = torch.Generator().manual_seed(sampling_seed(seed)) if temperature > 0 else None
    cfg = policy.cfg
    chunk = int(cfg.chunk)
    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    rewards: list[float] = []
    flags: list[bool] = []
    frames: dict[str, list[np.ndarray]] = {camera: [] for camera in cameras}
    proprio: dict[str, list[np.ndarray]] = {key: [] for key in env.proprio_keys}
    chunk_starts: list[int] = []
    chunk_tokens: list[np.ndarray] = []
    chunk_log_probs: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    rerendered = 0
    success = env.is_success()
    first_success: int | None = None

    while True:
        t = len(actions)
        if success and first_success is None:
            first_success = t
        states.append(env.get_state())
        flags.append(success)
        mark = clock()
        for camera in cameras:
            frame, retried = render_checked(env, camera, record_size, render_retries)
            frames[camera].append(frame)
            rerendered += retried
        seen: dict[str, np.ndarray] = {}
        if not pending:  # the policy is queried now: its cameras at its own size
            for camera in cfg.cameras:
                if record_size == image_size:
                    seen[camera] = frames[camera][-1]
                else:
                    seen[camera], retried = render_checked(env, camera, image_size, render_retries)
                    rerendered += retried
        timings["render_s"] += clock() - mark
        for key in env.proprio_keys:
            proprio[key].append(np.asarray(obs[key], dtype=np.float64).copy())
        if not pending:
            mark = clock()
            query: dict[str, Any] = {f"{camera}_image": seen[camera] for camera in cfg.cameras}
            for key in cfg.proprio_keys:
                if key not in obs:
                    raise ValueError(f"the policy needs observation {key!r}, which the env does not provide")
                query[key] = np.asarray(obs[key])
            out = policy.act(
                query,
                greedy=temperature == 0,
                temperature=temperature if temperature > 0 else 1.0,
                instruction=instruction,
                generator=generator,
                decoding=decoding,
            )
            pending = [np.asarray(a, dtype=np.float64) for a in np.asarray(out.actions)[0][:chunk]]
            chunk_starts.append(t)
            chunk_tokens.append(out.tokens[0].detach().cpu().numpy().astype(np.int64))
            chunk_log_probs.append(out.log_prob[0].detach().cpu().numpy().astype(np.float32))
            timings["policy_s"] += clock() - mark
        action = pending.pop(0)
        mark = clock()
        obs, reward = env.step(action)
        actions.append(action)
        rewards.append(reward)
        if first_success is not None and len(actions) - first_success >= hold_steps:
            # The success state (and its hold), with the action taken in each, are recorded: done.
            timings["physics_s"] += clock() - mark
            break
        success = env.is_success()
        timings["physics_s"] += clock() - mark
        if len(actions) >= max_steps and first_success is None and not success:
            break

    n = len(actions)
    record = PolicyEpisodeRecord(
        **record_fields(env, seed, states, actions, rewards, flags, proprio),
        chunk_starts=np.asarray(chunk_starts, dtype=np.int64),
        chunk_tokens=np.stack(chunk_tokens),  # at least one chunk: the loop queries before acting
        chunk_log_probs=np.stack(chunk_log_probs),
        warmup_steps=int(warmup_steps),
        env_steps=int(warmup_steps) + n,
        rerendered=rerendered,
        timings=timings,
    )
    images = {camera: np.stack(frames[camera]).astype(np.uint8, copy=False) for camera in cameras}
    return record, images
