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
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

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

# Reach guard (see _ScriptExpert._reach_guarded): horizontal eef distances from the robot base.
TILT_START_REACH = 0.64
TILT_FULL_REACH = 0.72
MAX_REACH_TILT = 0.35
LAND_TILT = 0.4  # share of the reach tilt kept while a cube is put down

# Integral action of the outer position loop (see _ScriptExpert._move).
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


def _rotvec_to_matrix(vec: np.ndarray) -> np.ndarray:
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
class _ScriptExpert:
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
        return _rotvec_to_matrix(axis * amount * MAX_REACH_TILT) @ target_rot

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


class LiftExpert(_ScriptExpert):
    """Lift: hover over the cube, descend, close, lift 15 cm and hold."""

    def _run(self, env: SimEnv) -> Script:
        for attempt in range(3):
            self.log.append(f"attempt {attempt}")
            cube = env.object_poses()["cube"]
            phi = _nearest_grasp_yaw(yaw_of(cube[:3, :3]), finger_yaw(env.eef_pose()[:3, :3]))
            rot = grasp_rotation(phi)

            def above(height: float, rot: np.ndarray = rot) -> tuple[np.ndarray, np.ndarray]:
                pos = env.object_poses()["cube"][:3, 3].copy()
                pos[2] += height
                return pos, rot

            self._grip = OPEN
            yield from self._move(env, lambda: above(0.08), tol=0.01, max_steps=60)
            yield from self._move(env, lambda: above(0.0), tol=0.004, max_steps=40, speed=0.6)
            grasp_at = above(0.0)
            yield from self._gripper(env, CLOSE, 10, grasp_at)
            lift_to = (grasp_at[0] + np.array([0.0, 0.0, 0.15]), rot)
            yield from self._move(env, lambda lift_to=lift_to: lift_to, tol=0.01, max_steps=40, speed=0.8)
            if env.object_poses()["cube"][2, 3] > TABLE_Z + 0.06:
                return True
            self.log.append("lift failed: cube not in hand")
            yield from self._gripper(env, OPEN, 6, (env.eef_pose()[:3, 3], rot))
        return False


def _nearest_grasp_yaw(cube_yaw: float, current_phi: float) -> float:
    """The 90°-periodic grasp yaw closest to the current one (for an isolated cube)."""
    return current_phi + wrap(cube_yaw - current_phi, math.pi / 2.0)


@dataclass(frozen=True)
class _Block:
    """A cube as an obstacle: footprint centre, yaw, half size and top height."""

    center: np.ndarray
    yaw: float
    half: float
    top: float


class StackThreeExpert(_ScriptExpert):
    """StackThree: put cube A on cube B, then cube C on cube A.

    Each pick chooses, of the two face-aligned grasps, the one whose fingers and hand stay farthest
    from the other cubes, and grasps slightly above the cube centre so the hand clears taller
    neighbours. If C lies so close to B that the hand could not reach down to C beside the finished
    A-on-B tower, C is first moved out of the way. Each cube is lifted straight up until it clears
    everything, carried while servoing its *measured* position (which corrects the grasp offset)
    and aligning its faces with the support, lowered slowly until it nearly touches, released
    while the arm holds still, and left straight upwards. The tower is re-checked before every
    move, and a failed pick or place is retried from the current state.
    """

    GRASP_ABOVE_CENTER = 0.005
    CARRY_CLEARANCE = 0.05
    PLACE_GAP = 0.004
    MIN_HAND_CLEARANCE = 0.006
    HALF: ClassVar[dict[str, float]] = {"cubeA": 0.02, "cubeB": 0.025, "cubeC": 0.02}

    def _run(self, env: SimEnv) -> Script:
        relocated = False
        for attempt in range(6):
            a_on_b = self._on_top(env, "cubeA", "cubeB")
            if a_on_b and self._on_top(env, "cubeC", "cubeA"):
                return True
            if not a_on_b and not relocated and self._c_blocked_by_future_tower(env):
                relocated = True
                self.log.append(f"attempt {attempt}: move cubeC away from cubeB")
                if (yield from self._pick(env, "cubeC")):
                    spot = self._free_spot(env)
                    yield from self._place(env, "cubeC", lambda spot=spot: (spot, TABLE_Z, None), precise=False)
                continue
            obj, support = ("cubeA", "cubeB") if not a_on_b else ("cubeC", "cubeA")
            self.log.append(f"attempt {attempt}: {obj} on {support}")
            if (yield from self._pick(env, obj)):
                yield from self._place(env, obj, lambda support=support: self._cube_surface(env, support))
        return self._on_top(env, "cubeA", "cubeB") and self._on_top(env, "cubeC", "cubeA")

    # -- geometry --------------------------------------------------------------------------
    def _blocks(self, env: SimEnv) -> dict[str, _Block]:
        return {
            name: _Block(pose[:3, 3].copy(), yaw_of(pose[:3, :3]), self.HALF[name], pose[2, 3] + self.HALF[name])
            for name, pose in env.object_poses().items()
        }

    def _cube_surface(self, env: SimEnv, name: str) -> tuple[np.ndarray, float, float]:
        """(centre xy, top z, yaw) of a cube's top face."""
        pose = env.object_poses()[name]
        return pose[:2, 3].copy(), float(pose[2, 3] + self.HALF[name]), yaw_of(pose[:3, :3])

    def _grasp_clearance(self, center: np.ndarray, phi: float, obstacles: Iterable[_Block]) -> float:
        """Smallest horizontal gap between the open gripper grasping at ``center`` and obstacles.

        Only obstacles tall enough to reach the fingers (or the hand) count; the fingertips reach
        9 mm below the grasp point, the hand starts 31 mm above it.
        """
        grasp_z = center[2] + self.GRASP_ABOVE_CENTER
        axis = np.array([-math.sin(phi), math.cos(phi), 0.0])  # finger axis: heading φ + 90°
        side = np.array([math.cos(phi), math.sin(phi), 0.0])
        clearance = np.inf
        for block in obstacles:
            points = []
            if block.top > grasp_z - FINGERTIP_BELOW_SITE:
                for r in np.linspace(FINGER_INNER_OPEN, FINGER_OUTER_OPEN, 6):
                    for w in (-FINGER_HALF_WIDTH, FINGER_HALF_WIDTH):
                        points += [center + s * r * axis + w * side for s in (-1.0, 1.0)]
            if block.top > grasp_z + HAND_BOTTOM_ABOVE_SITE - 0.003:
                for r in np.linspace(0.0, HAND_HALF_LENGTH, 11):
                    for w in (-HAND_HALF_WIDTH, 0.0, HAND_HALF_WIDTH):
                        points += [center + s * r * axis + w * side for s in (-1.0, 1.0)]
            for p in points:
                clearance = min(clearance, box_xy_distance(p, block.center, block.yaw, block.half))
        return float(clearance)

    def _grasp_yaws(self, cube_yaw: float, current_phi: float) -> list[float]:
        """The face-aligned grasp yaws within ±100° of the wrist's reset heading."""
        base = _nearest_grasp_yaw(cube_yaw, current_phi)
        candidates = (base, base + math.pi / 2.0, base - math.pi / 2.0)
        return [phi for phi in candidates if abs(wrap(phi, 2.0 * math.pi)) <= math.radians(100)]

    def _choose_grasp(self, env: SimEnv, obj: str, current_phi: float) -> float:
        blocks = self._blocks(env)
        target = blocks.pop(obj)
        radial = target.center[:2] - env.robot_base_pos()[:2]
        reach = float(np.linalg.norm(radial))
        radial /= max(reach, 1e-6)
        tilt = float(np.clip((reach - TILT_START_REACH) / (TILT_FULL_REACH - TILT_START_REACH), 0.0, 1.0))
        best_phi, best_score = current_phi, -np.inf
        for phi in self._grasp_yaws(target.yaw, current_phi):
            score = min(self._grasp_clearance(target.center, phi, blocks.values()), 0.015)
            # Among clear grasps (≥ 1.5 cm) prefer less wrist rotation and, far from the robot
            # where the gripper is tilted outwards (see _reach_guarded), a finger axis across the
            # reach direction so that the pads stay vertical under the tilt.
            axis = np.array([-math.sin(phi), math.cos(phi)])
            score -= 0.001 * abs(phi - current_phi) + 0.01 * tilt * abs(float(axis @ radial))
            if score > best_score:
                best_phi, best_score = phi, score
        return best_phi

    def _c_blocked_by_future_tower(self, env: SimEnv) -> bool:
        """Whether no grasp of C would clear the A-on-B tower once it stands where B is."""
        blocks = self._blocks(env)
        c, b = blocks["cubeC"], blocks["cubeB"]
        if c.top > TABLE_Z + 2 * self.HALF["cubeC"] + 0.01:
            return False  # C is not lying on the table; leave it to the main loop
        tower = _Block(b.center, b.yaw, b.half, b.top + 2 * self.HALF["cubeA"])
        phi0 = finger_yaw(env.eef_pose()[:3, :3])
        best = max(self._grasp_clearance(c.center, phi, [tower]) for phi in self._grasp_yaws(c.yaw, phi0))
        return best < self.MIN_HAND_CLEARANCE

    def _free_spot(self, env: SimEnv) -> np.ndarray:
        """A table spot for C far enough from B (and A) to be grasped next to the tower.

        Of the valid spots, the one on the shortest path C → spot → B (C travels both legs).
        """
        blocks = self._blocks(env)
        base = env.robot_base_pos()[:2]
        c_xy = blocks["cubeC"].center[:2]
        best, best_dist = c_xy, np.inf
        for x in np.arange(-0.18, 0.101, 0.02):
            for y in np.arange(-0.22, 0.221, 0.02):
                spot = np.array([x, y])
                if np.linalg.norm(spot - base) > TILT_START_REACH:
                    continue
                to_b = float(np.linalg.norm(spot - blocks["cubeB"].center[:2]))
                to_a = float(np.linalg.norm(spot - blocks["cubeA"].center[:2]))
                if to_b < 0.15 or to_a < 0.09:
                    continue
                path = float(np.linalg.norm(spot - c_xy)) + to_b
                if path < best_dist:
                    best, best_dist = spot, path
        return best

    def _hover_height(self, env: SimEnv, obj: str) -> float:
        """Eef height above ``obj`` from which to descend: fingertips 4 cm over every cube top."""
        blocks = self._blocks(env)
        return max(blocks[obj].center[2] + 0.06, max(b.top for b in blocks.values()) + 0.04 + FINGERTIP_BELOW_SITE)

    # -- pick ------------------------------------------------------------------------------
    def _pick(self, env: SimEnv, obj: str) -> Script:
        eef = env.eef_pose()
        phi = self._choose_grasp(env, obj, finger_yaw(eef[:3, :3]))
        rot = grasp_rotation(phi)
        self._grip = OPEN
        hover_z = self._hover_height(env, obj)

        def over(height: float | None) -> tuple[np.ndarray, np.ndarray]:
            pos = env.object_poses()[obj][:3, 3].copy()
            pos[2] = hover_z if height is None else pos[2] + height
            return pos, rot

        # Travel to a hover point high above the cube, turning to the grasp yaw on the way; it is a
        # pass-through point, so a loose tolerance keeps the motion fluid.
        yield from self._move(env, lambda: over(None), tol=0.012, rot_tol=0.06, max_steps=60, gain=1.5)
        # Descend: quick until 3 cm above the grasp height, then slow so the fingers settle square.
        yield from self._move(
            env, lambda: over(self.GRASP_ABOVE_CENTER + 0.03), tol=0.008, max_steps=30, speed=0.7, gain=1.5
        )
        yield from self._move(env, lambda: over(self.GRASP_ABOVE_CENTER), tol=0.003, max_steps=30, speed=0.5, gain=1.5)
        hold = over(self.GRASP_ABOVE_CENTER)
        yield from self._gripper(env, CLOSE, 8, hold)
        width = float(np.sum(np.abs(env.gripper_qpos())))
        z0 = env.object_poses()[obj][2, 3]

        def lifted() -> bool:
            return env.object_poses()[obj][2, 3] - z0 > 0.03

        # Straight up, checking on the way that the cube comes along.
        up = hold[0] + np.array([0.0, 0.0, 0.05])
        yield from self._move(env, lambda: (up, rot), tol=0.01, max_steps=20, speed=0.6, done_when=lifted)
        if not lifted():
            self.log.append(f"pick {obj} failed (finger gap {width:.4f})")
            yield from self._gripper(env, OPEN, 5, (env.eef_pose()[:3, 3], rot))
            return False
        return True

    # -- place -----------------------------------------------------------------------------
    def _place(
        self,
        env: SimEnv,
        obj: str,
        surface: Callable[[], tuple[np.ndarray, float, float | None]],
        precise: bool = True,
    ) -> Script:
        """Put the held cube on ``surface()`` = (centre xy, top z, yaw to align with or None).

        ``precise=False`` (setting a cube aside on the table) skips the slow final approach and
        lets the cube drop the last centimetre.
        """
        half_obj = self.HALF[obj]
        held_yaw0 = yaw_of(env.object_poses()[obj][:3, :3])
        phi0 = finger_yaw(env.eef_pose()[:3, :3])
        _, _, surface_yaw0 = surface()
        # The cube may land in any of four face-aligned yaws; choose once (not per step, which
        # could flip between two equally good ones) the one that leaves the wrist nearest its
        # reset heading, far from the last joint's limits.
        cube_goal_yaw: float | None = None
        if surface_yaw0 is not None:
            options = [surface_yaw0 + k * math.pi / 2.0 for k in range(4)]
            cube_goal_yaw = min(options, key=lambda y: abs(wrap(phi0 + wrap(y - held_yaw0, 2 * math.pi), 2 * math.pi)))

        def aligned() -> np.ndarray:
            eef = env.eef_pose()
            phi = finger_yaw(eef[:3, :3])
            if cube_goal_yaw is not None:
                phi += wrap(cube_goal_yaw - yaw_of(env.object_poses()[obj][:3, :3]), 2 * math.pi)
            return grasp_rotation(phi)

        def lowest_point() -> float:
            # The held cube tilts with the gripper (see _reach_guarded): use its lowest corner.
            held = env.object_poses()[obj]
            return float(held[2, 3] - half_obj * np.abs(held[2, :3]).sum())

        def target(bottom_above_surface: float) -> tuple[np.ndarray, np.ndarray]:
            held = env.object_poses()[obj]
            xy, top, _ = surface()
            pos = env.eef_pose()[:3, 3].copy()
            # Move the eef so that the measured cube (not the eef) ends above the surface: this
            # corrects whatever offset the grasp left between cube and gripper.
            pos[:2] += xy - held[:2, 3]
            pos[2] += top + bottom_above_surface - lowest_point()
            return pos, aligned()

        def dropped() -> bool:
            return env.object_poses()[obj][2, 3] < env.eef_pose()[2, 3] - 0.05

        def fade() -> float:
            # Full reach tilt ≥ 4 cm above the surface, LAND_TILT of it when about to touch: the
            # cube should land nearly flat, but a vertical gripper is out of reach at the far edge.
            gap = lowest_point() - surface()[1]
            return LAND_TILT + (1.0 - LAND_TILT) * float(np.clip((gap - 0.008) / 0.035, 0.0, 1.0))

        # Straight up until the held cube's bottom is CARRY_CLEARANCE above every other cube's top,
        # so it clears them all when moving sideways (fast moves sag by up to ≈2 cm). The cube is
        # turned to its landing yaw on the way up: OSC barely translates while it rotates fast.
        blocks = self._blocks(env)
        others_top = max(b.top for n, b in blocks.items() if n != obj)
        lift_by = others_top + self.CARRY_CLEARANCE + half_obj - blocks[obj].center[2]
        up = env.eef_pose()[:3, 3] + np.array([0.0, 0.0, max(lift_by, 0.0)])
        yield from self._move(
            env, lambda: (up, aligned()), tol=0.01, rot_tol=0.15, max_steps=25, gain=1.5, done_when=dropped
        )
        carry = max(lowest_point() - surface()[1], self.CARRY_CLEARANCE)
        yield from self._move(
            env, lambda: target(carry), tol=0.008, rot_tol=0.08, max_steps=80, gain=1.5, done_when=dropped
        )
        if dropped():
            self.log.append(f"dropped {obj} while carrying")
            return False
        if precise:
            yield from self._move(
                env,
                lambda: target(0.015),
                tilt_scale=fade,
                tol=0.003,
                rot_tol=0.05,
                max_steps=30,
                speed=0.5,
                gain=1.5,
                done_when=dropped,
            )
            yield from self._move(
                env,
                lambda: target(self.PLACE_GAP),
                tilt_scale=fade,
                tol=0.002,
                rot_tol=0.05,
                max_steps=30,
                speed=0.25,
                gain=1.5,
                done_when=dropped,
            )
        else:
            yield from self._move(
                env, lambda: target(0.01), tilt_scale=fade, tol=0.006, max_steps=25, gain=1.5, done_when=dropped
            )
        # Release while holding still, then back straight up so the fingers do not drag the cube.
        hold = (env.eef_pose()[:3, 3].copy(), aligned())
        yield from self._gripper(env, OPEN, 6, hold, tilt_scale=LAND_TILT)
        up = hold[0] + np.array([0.0, 0.0, 0.05])

        def regain() -> float:
            # Bring the full reach tilt back while rising, not before the fingers are clear.
            rise = float(np.clip((env.eef_pose()[2, 3] - hold[0][2] - 0.01) / 0.03, 0.0, 1.0))
            return LAND_TILT + (1.0 - LAND_TILT) * rise

        yield from self._move(env, lambda: (up, hold[1]), tol=0.01, max_steps=20, speed=0.5, tilt_scale=regain)
        xy, top, _ = surface()
        pose = env.object_poses()[obj][:3, 3]
        ok = bool(np.linalg.norm(pose[:2] - xy) < 0.02 and abs(pose[2] - (top + half_obj)) < 0.006)
        if not ok:
            self.log.append(f"placing {obj} failed")
        return ok

    def _on_top(self, env: SimEnv, obj: str, support: str) -> bool:
        blocks = self._blocks(env)
        held, sup = blocks[obj], blocks[support]
        return bool(
            np.linalg.norm(held.center[:2] - sup.center[:2]) < 0.02
            and abs(held.center[2] - (sup.top + held.half)) < 0.006
        )


def all_experts() -> Iterable[type[_ScriptExpert]]:
    """The expert classes (for documentation and tests)."""
    return (LiftExpert, StackThreeExpert)
