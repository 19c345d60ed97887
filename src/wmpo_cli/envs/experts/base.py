"""Scripted experts that solve the tasks from privileged object state.

They produce the source demonstrations (and, with action noise, labelled failures) that seed
policy training. Every expert emits robosuite 1.5 OSC_POSE delta actions: 7 numbers in [-1, 1],
``[dx, dy, dz, drx, dry, drz, grip]`` where the first three are scaled by 5 cm, the next three by
0.5 rad (axis-angle in the world/base frame, applied as ``R_goal = R(δ)·R_eef``), and ``grip`` is
-1 to open, +1 to close (the Panda gripper ramps at 0.2 per step, so it needs 5 steps to open from
rest and 10 to close fully).

The scripts are closed-loop: each step re-reads the object and end-effector poses, so they correct
tracking errors and object slip instead of replaying a fixed plan. They are written as Python
generators (one ``yield`` per action) because a procedural script with retries reads far more
clearly than an explicit state machine.

Geometry of the Panda gripper in the end-effector (grip site) frame, measured on robosuite 1.5.2:
the fingers close along the site's x axis (world +y at reset); the fingertips reach 9 mm below the
site; the pads are centred 3.6 mm above it; the hand's collision box starts 31 mm above the site and
spans ±100 mm along x and ±32 mm along y; open fingers reach 40–66 mm from the centre along x.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from wmpo_cli.envs.sim import SimEnv

OPEN = -1.0
CLOSE = 1.0
POS_SCALE = 0.05  # metres per unit action (OSC output_max)
ROT_SCALE = 0.5  # radians per unit action

# Pointing-down orientation with the finger axis (eef x) along world +y, the Panda's reset pose.
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])

# Gripper geometry in the eef frame (see module docstring).
HAND_BOTTOM_ABOVE_SITE = 0.031
HAND_HALF_LENGTH = 0.10  # along the finger axis
HAND_HALF_WIDTH = 0.032
FINGER_INNER_OPEN = 0.040
FINGER_OUTER_OPEN = 0.066
FINGER_HALF_WIDTH = 0.011
FINGERTIP_BELOW_SITE = 0.009

TABLE_Z = 0.8

# Reach guard (see ScriptExpertBase._reach_guarded): horizontal eef distances from the robot base.
TILT_START_REACH = 0.64
TILT_FULL_REACH = 0.72
MAX_REACH_TILT = 0.35
LAND_TILT = 0.4  # share of the reach tilt kept while a cube is put down

# Integral action of the outer position loop (see ScriptExpertBase._move).
INTEGRAL_ZONE = 0.01
INTEGRAL_GAIN = 0.05
INTEGRAL_LIMIT = 0.02

Action = np.ndarray
Script = Generator[Action, None, bool]


@runtime_checkable
class ScriptedExpert(Protocol):
    """A closed-loop scripted controller for one task."""

    def reset(self, env: SimEnv, rng: np.random.Generator) -> None:
        """Start a new episode on ``env`` (already reset); ``rng`` drives the action noise."""
        ...

    def act(self, env: SimEnv) -> np.ndarray:
        """Next (7,) float64 action for the env's current state."""
        ...

    @property
    def done(self) -> bool:
        """True once the script has finished (object released and gripper retreated)."""
        ...


# ------------------------------------------------------------------------------------ math
def rot_z(angle: float) -> np.ndarray:
    """Rotation by ``angle`` about world z."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def axis_angle(rot: np.ndarray) -> np.ndarray:
    """Axis-angle vector of a rotation matrix (robust near 0 and π)."""
    cos = float(np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0))
    angle = math.acos(cos)
    if angle < 1e-9:
        return np.zeros(3)
    if angle > math.pi - 1e-4:
        # Near π the antisymmetric part vanishes; take the axis from the symmetric part.
        diag = np.clip((np.diag(rot) + 1.0) / 2.0, 0.0, None)
        axis = np.sqrt(diag)
        k = int(np.argmax(axis))
        for j in range(3):
            if j != k:
                axis[j] = math.copysign(axis[j], rot[k, j] + rot[j, k])
        return axis / np.linalg.norm(axis) * angle
    vec = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    return vec / (2.0 * math.sin(angle)) * angle


def rotation_matrix(vec: np.ndarray) -> np.ndarray:
    """Rotation matrix of an axis-angle vector (Rodrigues)."""
    angle = float(np.linalg.norm(vec))
    if angle < 1e-12:
        return np.eye(3)
    k = vec / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * (kx @ kx)


def wrap(angle: float, period: float) -> float:
    """Wrap ``angle`` into [-period/2, period/2)."""
    return (angle + period / 2.0) % period - period / 2.0


def yaw_of(rot: np.ndarray) -> float:
    """Heading of a body's x axis about world z."""
    return math.atan2(rot[1, 0], rot[0, 0])


def finger_yaw(eef_rot: np.ndarray) -> float:
    """The φ of ``R = Rz(φ)·R_DOWN`` closest to ``eef_rot`` (0 at the reset pose)."""
    return wrap(math.atan2(eef_rot[1, 0], eef_rot[0, 0]) - math.pi / 2.0, 2.0 * math.pi)


def grasp_rotation(phi: float) -> np.ndarray:
    """Pointing-down eef orientation whose finger axis has heading φ + 90°."""
    return rot_z(phi) @ R_DOWN


def box_xy_distance(point: np.ndarray, center: np.ndarray, yaw: float, half: float) -> float:
    """Horizontal distance from ``point`` to a yawed square footprint (0 inside)."""
    local = rot_z(-yaw)[:2, :2] @ (point[:2] - center[:2])
    outside = np.maximum(np.abs(local) - half, 0.0)
    return float(np.linalg.norm(outside))


# --------------------------------------------------------------------------------- experts
class ScriptExpertBase:
    """Base for generator-scripted experts: noise, bookkeeping and motion primitives."""

    def __init__(self, noise: float = 0.0) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.noise = float(noise)
        self._rng = np.random.default_rng(0)
        self._script: Script | None = None
        self._done = False
        self._grip = OPEN
        self.succeeded: bool | None = None  # what the script itself believes (for diagnostics)
        self.log: list[str] = []

    # -- protocol --------------------------------------------------------------------------
    def reset(self, env: SimEnv, rng: np.random.Generator) -> None:
        self._rng = rng
        self._done = False
        self._grip = OPEN
        self.succeeded = None
        self.log = []
        self._script = self._run(env)

    def act(self, env: SimEnv) -> np.ndarray:
        if self._script is None:
            raise RuntimeError("call reset(env, rng) before act(env)")
        action: np.ndarray | None = None
        if not self._done:
            try:
                action = next(self._script)
            except StopIteration as stop:
                self._done = True
                self.succeeded = bool(stop.value)
        if action is None:
            action = self._hold()
        action = np.asarray(action, dtype=np.float64).copy()
        if self.noise > 0:
            action[:6] += self._rng.normal(0.0, self.noise, size=6)
        return np.clip(action, -1.0, 1.0)

    @property
    def done(self) -> bool:
        return self._done

    # -- script ----------------------------------------------------------------------------
    def _run(self, env: SimEnv) -> Script:
        raise NotImplementedError

    # -- primitives ------------------------------------------------------------------------
    def _hold(self) -> np.ndarray:
        """Keep the arm where it is (zero delta) and the gripper as last commanded."""
        action = np.zeros(7)
        action[6] = self._grip
        return action

    def _reach_guarded(self, env: SimEnv, target_rot: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """``target_rot`` tilted so the fingertips point away from the robot when it reaches far.

        With the gripper pointing straight down, OSC drives the Panda's elbow onto its joint limit
        when the hand is more than ≈0.72 m (horizontally) from the base: the Jacobian then loses
        the radial direction, so the arm cannot pull back towards its base and stays stuck. A
        0.35 rad outward tilt keeps the elbow well bent (≈ -1.3 rad) over the whole D1 area. It is
        kept through the grasp (a vertical grasp puts the arm back on the stretched branch, where
        lifting straight up locks the elbow) but ``scale`` fades it out as a held cube nears its
        support, because the cube tilts with the gripper and must land flat.
        """
        radial = env.eef_pose()[:2, 3] - env.robot_base_pos()[:2]
        reach = float(np.linalg.norm(radial))
        amount = float(np.clip((reach - TILT_START_REACH) / (TILT_FULL_REACH - TILT_START_REACH), 0.0, 1.0))
        amount *= scale
        if amount <= 0:
            return target_rot
        radial3 = np.array([radial[0], radial[1], 0.0]) / max(reach, 1e-6)
        # A positive rotation about (radial × z) turns the gripper's pointing axis outwards.
        axis = np.cross(radial3, [0.0, 0.0, 1.0])
        return rotation_matrix(axis * amount * MAX_REACH_TILT) @ target_rot

    def _action(
        self, env: SimEnv, target_pos: np.ndarray, target_rot: np.ndarray, speed: float, gain: float = 1.0
    ) -> np.ndarray:
        """Proportional OSC delta towards a pose, with the translation capped at ``speed``."""
        eef = env.eef_pose()
        dpos = gain * (target_pos - eef[:3, 3]) / POS_SCALE
        peak = float(np.max(np.abs(dpos)))
        if peak > speed:
            dpos *= speed / peak
        drot = np.clip(axis_angle(target_rot @ eef[:3, :3].T) / ROT_SCALE, -1.0, 1.0)
        return np.concatenate([dpos, drot, [self._grip]])

    def _move(
        self,
        env: SimEnv,
        target: Callable[[], tuple[np.ndarray, np.ndarray]],
        *,
        tol: float = 0.006,
        rot_tol: float = 0.06,
        max_steps: int = 60,
        speed: float = 1.0,
        gain: float = 1.0,
        tilt_scale: Callable[[], float] | None = None,
        done_when: Callable[[], bool] | None = None,
    ) -> Script:
        """Servo the eef to ``target()`` (re-evaluated every step); True if it got within tolerance.

        Near the target an integral term builds up: at the edge of the workspace the OSC
        controller settles a few millimetres short (joint limits, nullspace pull), which a purely
        proportional outer loop never removes.
        """
        integral = np.zeros(3)
        for _ in range(max_steps):
            pos, rot = target()
            rot = self._reach_guarded(env, rot, 1.0 if tilt_scale is None else tilt_scale())
            eef = env.eef_pose()
            err = pos - eef[:3, 3]
            close = np.linalg.norm(err) < tol
            aligned = np.linalg.norm(axis_angle(rot @ eef[:3, :3].T)) < rot_tol
            if (close and aligned) or (done_when is not None and done_when()):
                return True
            if np.linalg.norm(err) < INTEGRAL_ZONE:
                integral = np.clip(integral + INTEGRAL_GAIN * err, -INTEGRAL_LIMIT, INTEGRAL_LIMIT)
            yield self._action(env, pos + integral, rot, speed, gain)
        return False

    def _gripper(
        self, env: SimEnv, command: float, steps: int, hold: tuple[np.ndarray, np.ndarray], tilt_scale: float = 1.0
    ) -> Script:
        """Open/close for ``steps`` steps while holding the arm at ``hold``."""
        self._grip = command
        for _ in range(steps):
            yield self._action(env, hold[0], self._reach_guarded(env, hold[1], tilt_scale), speed=0.5)
        return True


def nearest_grasp_yaw(cube_yaw: float, current_phi: float) -> float:
    """The 90°-periodic grasp yaw closest to the current one (for an isolated cube)."""
    return current_phi + wrap(cube_yaw - current_phi, math.pi / 2.0)
