"""The MimicGen-style trajectory generator, as a controller ``run_expert_episode`` can drive.

Per attempt (reference §10): shift the source demos' subtask boundaries by random offsets; then,
subtask by subtask, pick a source segment, re-express its commanded end-effector poses relative
to the subtask's reference object, carry them to where that object is *now*
(``T_new = T_obj_now · T_obj_src⁻¹ · T_eef_src``), prepend a few interpolation poses from the
previous target, and execute the poses as OSC_POSE deltas with Gaussian noise on the arm dims.
Each subtask is planned only when it starts, so it uses the objects' poses at that moment (after
the earlier subtasks have moved them), which is what makes MimicGen work on multi-step tasks.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from wmpo_cli.datagen.source import SourceDemo
from wmpo_cli.datagen.specs import DatagenSpec
from wmpo_cli.envs.experts.base import POS_SCALE, ROT_SCALE, axis_angle, rotation_matrix

if TYPE_CHECKING:
    from wmpo_cli.envs.sim import SimEnv


def pose_distance(a: np.ndarray, b: np.ndarray) -> float:
    """MimicGen's object-pose distance: ‖Δp‖ (m) + rotation angle between them (rad)."""
    angle = float(np.linalg.norm(axis_angle(a[:3, :3] @ b[:3, :3].T)))
    return float(np.linalg.norm(a[:3, 3] - b[:3, 3])) + angle


def interpolate_poses(start: np.ndarray, end: np.ndarray, steps: int) -> list[np.ndarray]:
    """``steps`` poses strictly between ``start`` and ``end``: lerp position, slerp rotation."""
    delta = axis_angle(start[:3, :3].T @ end[:3, :3])
    poses = []
    for k in range(1, steps + 1):
        alpha = k / (steps + 1)
        pose = np.eye(4)
        pose[:3, 3] = (1 - alpha) * start[:3, 3] + alpha * end[:3, 3]
        pose[:3, :3] = start[:3, :3] @ rotation_matrix(alpha * delta)
        poses.append(pose)
    return poses


def shifted_boundaries(
    base: tuple[int, ...], length: int, offset: tuple[int, int], rng: np.random.Generator
) -> list[int]:
    """Shift each boundary by a random integer in ``offset`` (inclusive), keeping segments non-empty."""
    shifted: list[int] = []
    low = 1
    for i, boundary in enumerate(base):
        remaining = len(base) - i  # later boundaries plus the final segment need room
        value = boundary + int(rng.integers(offset[0], offset[1] + 1))
        value = min(max(value, low), length - remaining)
        shifted.append(value)
        low = value + 1
    return shifted


class MimicGenController:
    """Generates one new demo per episode from annotated source demos (``ScriptedExpert`` protocol).

    Args:
        sources: annotated source demos (at least one).
        spec: the task's subtask spec.
        action_noise: std of the Gaussian noise on the 6 arm action dims (not during interpolation).
        interpolation_steps: poses inserted before each segment.
    """

    def __init__(
        self,
        sources: list[SourceDemo],
        spec: DatagenSpec,
        action_noise: float = 0.05,
        interpolation_steps: int = 5,
    ) -> None:
        if not sources:
            raise ValueError("need at least one source demo")
        if action_noise < 0 or interpolation_steps < 0:
            raise ValueError("action_noise and interpolation_steps must be >= 0")
        self.sources = sources
        self.spec = spec
        self.action_noise = float(action_noise)
        self.interpolation_steps = int(interpolation_steps)
        self._rng = np.random.default_rng(0)
        self._plan: deque[tuple[np.ndarray, float, bool]] = deque()
        self._subtask = -1
        self._done = False
        self._last_target: np.ndarray | None = None
        self._last_gripper = -1.0
        self._boundaries: list[list[int]] = []
        self._demo_for_attempt: int | None = None
        self.chosen: list[str] = []  # source demo of each subtask (recorded in the episode)

    # -- protocol --------------------------------------------------------------------------
    def reset(self, env: SimEnv, rng: np.random.Generator) -> None:
        self._rng = rng
        self._plan.clear()
        self._subtask = -1
        self._done = False
        self._last_target = None
        self._last_gripper = -1.0
        self._demo_for_attempt = None
        self.chosen = []
        self._boundaries = [
            shifted_boundaries(src.boundaries, len(src), self.spec.boundary_offset, rng) for src in self.sources
        ]

    @property
    def done(self) -> bool:
        return self._done

    def act(self, env: SimEnv) -> np.ndarray:
        while not self._plan and not self._done:
            if self._subtask + 1 >= len(self.spec.subtasks):
                self._done = True
                break
            self._subtask += 1
            self._plan_subtask(env, self._subtask)
        if self._done and not self._plan:
            action = np.zeros(7)
            action[6] = self._last_gripper
            return action
        target, gripper, noisy = self._plan.popleft()
        self._last_target, self._last_gripper = target, gripper
        eef = env.eef_pose()
        action = np.empty(7)
        action[:3] = (target[:3, 3] - eef[:3, 3]) / POS_SCALE
        action[3:6] = axis_angle(target[:3, :3] @ eef[:3, :3].T) / ROT_SCALE
        action[:6] = np.clip(action[:6], -1.0, 1.0)
        if noisy and self.action_noise > 0:
            action[:6] += self._rng.normal(0.0, self.action_noise, size=6)
        action[6] = gripper
        return np.clip(action, -1.0, 1.0)

    # -- planning --------------------------------------------------------------------------
    def _segment(self, demo: int, subtask: int) -> tuple[int, int]:
        bounds = self._boundaries[demo]
        start = 0 if subtask == 0 else bounds[subtask - 1]
        end = bounds[subtask] if subtask < len(bounds) else len(self.sources[demo])
        return start, end

    def _select(self, env: SimEnv, subtask: int) -> int:
        if self._demo_for_attempt is not None and not self.spec.select_per_subtask:
            return self._demo_for_attempt
        if self.spec.selection == "random":
            choice = int(self._rng.integers(len(self.sources)))
        elif self.spec.selection == "nearest_object":
            obj = self.spec.subtasks[subtask].object
            now = env.object_poses()[obj]
            distances = [
                pose_distance(src.object_poses[obj][self._segment(i, subtask)[0]], now)
                for i, src in enumerate(self.sources)
            ]
            nearest = np.argsort(distances, kind="stable")[: self.spec.nearest_k]
            choice = int(nearest[int(self._rng.integers(len(nearest)))])
        else:
            raise ValueError(f"unknown selection strategy {self.spec.selection!r}")
        self._demo_for_attempt = choice
        return choice

    def _plan_subtask(self, env: SimEnv, subtask: int) -> None:
        demo = self._select(env, subtask)
        src = self.sources[demo]
        self.chosen.append(src.name)
        start, end = self._segment(demo, subtask)
        obj = self.spec.subtasks[subtask].object
        now = env.object_poses()[obj]
        then = src.object_poses[obj][start]
        transform = now @ np.linalg.inv(then)
        targets = [transform @ pose for pose in src.target_pose[start:end]]
        grippers = [float(g) for g in src.gripper[start:end]]
        origin = self._last_target if self._last_target is not None else env.eef_pose()
        for pose in interpolate_poses(origin, targets[0], self.interpolation_steps):
            self._plan.append((pose, grippers[0], False))
        for pose, grip in zip(targets, grippers, strict=True):
            self._plan.append((pose, grip, True))


__all__ = ["MimicGenController", "interpolate_poses", "pose_distance", "shifted_boundaries"]
