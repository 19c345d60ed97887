"""Scripted expert for ``three_piece_assembly``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wmpo_cli.envs.experts.base import (
    CLOSE,
    FINGERTIP_BELOW_SITE,
    LAND_TILT,
    OPEN,
    POS_SCALE,
    ROT_SCALE,
    TABLE_Z,
    TILT_START_REACH,
    Script,
    ScriptExpertBase,
    axis_angle,
    finger_yaw,
    grasp_rotation,
    rot_z,
    wrap,
    yaw_of,
)

if TYPE_CHECKING:
    from wmpo_cli.envs.sim import SimEnv

# Geometry (metres, piece-local; body frames are bounding-box centres, see the env module).
PIECE_1_HALF = 0.051  # piece_1 bounding half size (a 10.2 cm cube)
PIECE_2_HALF_HEIGHT = 0.08
BASE_HALF_HEIGHT = 0.019
RIDGE_TOP = 0.051  # piece_1's ridge top above its centre
KNOB_TOP = 0.08  # piece_2's knob top above its centre
OBJECT_TOP = {"piece_1": PIECE_1_HALF, "piece_2": KNOB_TOP, "base": BASE_HALF_HEIGHT}


def _rotvec(vec: np.ndarray) -> np.ndarray:
    """Rotation matrix of an axis-angle vector (Rodrigues' formula)."""
    angle = float(np.linalg.norm(vec))
    if angle < 1e-12:
        return np.eye(3)
    kx, ky, kz = vec / angle
    skew = np.array([[0.0, -kz, ky], [kz, 0.0, -kx], [-ky, kx, 0.0]])
    return np.eye(3) + math.sin(angle) * skew + (1.0 - math.cos(angle)) * (skew @ skew)


@dataclass(frozen=True)
class _Pick:
    """How to grasp a piece: grasp-point height above its centre, finger-axis period, reach tilt.

    The fingers always close along (a yaw multiple of ``period`` from) the piece's x axis.
    """

    height: float
    period: float  # the grasp is symmetric under this yaw period (π for the ridge, π/2 for the knob)
    tilt: float  # share of the reach tilt kept while grasping (see ScriptExpertBase._reach_guarded)


# piece_1: across the ridge (fingers along piece x), high on the ridge so the fingertips stay 3 cm
# clear of the plate and the (tilted) hand stays above the ridge top.
# piece_2: the 4 cm knob, fingertips 9 mm above the plate.
PICKS = {
    "piece_1": _Pick(height=0.032, period=math.pi, tilt=0.7),
    "piece_2": _Pick(height=0.058, period=math.pi / 2.0, tilt=1.0),
}


class ThreePieceAssemblyExpert(ScriptExpertBase):
    """ThreePieceAssembly: piece_1 into the base's hole, then piece_2 over piece_1's ridge.

    Each piece is grasped from above (piece_1 across its ridge, piece_2 by its knob), lifted
    straight up until it clears every other piece, turned on the way to its landing yaw (piece_1
    square to the base's hole, modulo 90°; piece_2's slot along piece_1's ridge, modulo 180°), and
    carried while servoing a *measured* key point of the held piece (piece_1's plate bottom over the
    hole's centre; piece_2's slot bottom over the ridge's top) so that grasp offsets and slip are
    corrected. It is then lowered slowly while the servo keeps centring it; if it gets stuck on an
    edge it is lifted a little and re-centred. It is released while the arm holds still, and the
    gripper backs straight up. Every stage is re-checked from the state and retried.
    """

    CARRY_CLEARANCE = 0.03  # held piece's lowest point above every other piece's top when carried
    HOVER_ABOVE_TARGET = 0.015  # key point above its seat before the slow descent
    ALIGN_XY_TOL = 0.0015
    ALIGN_YAW_TOL = math.radians(1.5)
    DESCENT_SPEED = 0.12  # action units (×5 cm per step commanded; OSC follows at about half)
    DESCENT_XY_TOL = 0.0025
    MAX_LEVELLING = math.radians(30)  # larger tilts mean the piece is no longer held as gripped

    def _run(self, env: SimEnv) -> Script:
        for attempt in range(6):
            if self._piece_2_done(env) and self._piece_1_done(env):
                return True
            if not self._piece_1_done(env):
                self.log.append(f"attempt {attempt}: piece_1 into base")
                if (yield from self._pick(env, "piece_1")):
                    yield from self._place(env, "piece_1")
                continue
            self.log.append(f"attempt {attempt}: piece_2 onto piece_1")
            if (yield from self._pick(env, "piece_2")):
                yield from self._place(env, "piece_2")
        return self._piece_1_done(env) and self._piece_2_done(env)

    # -- state -----------------------------------------------------------------------------
    @staticmethod
    def _point(env: SimEnv, name: str, local: tuple[float, float, float]) -> np.ndarray:
        pose = env.object_poses()[name]
        return pose[:3, :3] @ np.asarray(local) + pose[:3, 3]

    def _piece_1_done(self, env: SimEnv) -> bool:
        poses = env.object_poses()
        p1, base = poses["piece_1"][:3, 3], poses["base"][:3, 3]
        return bool(np.linalg.norm(p1[:2] - base[:2]) < 0.015 and p1[2] < TABLE_Z + PIECE_1_HALF + 0.006)

    def _piece_2_done(self, env: SimEnv) -> bool:
        poses = env.object_poses()
        p1, p2, base = poses["piece_1"][:3, 3], poses["piece_2"][:3, 3], poses["base"][:3, 3]
        seated_z = base[2] + BASE_HALF_HEIGHT + PIECE_2_HALF_HEIGHT
        return bool(np.linalg.norm(p2[:2] - p1[:2]) < 0.015 and abs(p2[2] - seated_z) < 0.006)

    def _tops(self, env: SimEnv, exclude: str) -> float:
        """Highest top (z) among the pieces other than ``exclude``."""
        return max(pose[2, 3] + OBJECT_TOP[name] for name, pose in env.object_poses().items() if name != exclude)

    # -- pick ------------------------------------------------------------------------------
    def _grasp_yaws(self, env: SimEnv, obj: str) -> list[float]:
        """Finger yaws φ (see ``grasp_rotation``) that grasp ``obj`` squarely, within ±100°."""
        spec = PICKS[obj]
        piece_yaw = yaw_of(env.object_poses()[obj][:3, :3])
        # Finger-axis heading is φ + 90°; it must equal piece_yaw modulo the period.
        base_phi = piece_yaw - math.pi / 2.0
        options = [wrap(base_phi + k * spec.period, 2.0 * math.pi) for k in range(round(2 * math.pi / spec.period))]
        return [phi for phi in options if abs(phi) <= math.radians(100)]

    def _landing_yaws(self, env: SimEnv, obj: str) -> list[float]:
        """Piece yaws at which ``obj`` fits its seat (as measured now)."""
        poses = env.object_poses()
        if obj == "piece_1":
            seat = yaw_of(poses["base"][:3, :3])
            return [seat + k * math.pi / 2.0 for k in range(4)]
        seat = yaw_of(poses["piece_1"][:3, :3])
        return [seat, seat + math.pi]

    def _choose_grasp(self, env: SimEnv, obj: str) -> float:
        """The grasp yaw that keeps the wrist nearest its reset heading, at grasp and at landing."""
        piece_yaw = yaw_of(env.object_poses()[obj][:3, :3])
        best, best_cost = 0.0, math.inf
        for phi in self._grasp_yaws(env, obj):
            for landing in self._landing_yaws(env, obj):
                phi_land = wrap(phi + wrap(landing - piece_yaw, 2.0 * math.pi), 2.0 * math.pi)
                turn = abs(wrap(landing - piece_yaw, 2.0 * math.pi))
                cost = abs(phi) + abs(phi_land) + 0.5 * turn
                if abs(phi_land) <= math.radians(110) and cost < best_cost:
                    best, best_cost = phi, cost
        return best

    def _pick(self, env: SimEnv, obj: str) -> Script:
        spec = PICKS[obj]
        rot = grasp_rotation(self._choose_grasp(env, obj))
        self._grip = OPEN
        hover_z = max(self._tops(env, "") + 0.04 + FINGERTIP_BELOW_SITE, env.object_poses()[obj][2, 3] + 0.1)

        def over(height: float | None) -> tuple[np.ndarray, np.ndarray]:
            pos = env.object_poses()[obj][:3, 3].copy()
            pos[2] = hover_z if height is None else pos[2] + height
            return pos, rot

        def tilt() -> float:
            return spec.tilt

        yield from self._move(env, lambda: over(None), tol=0.012, rot_tol=0.08, max_steps=60, gain=1.5, tilt_scale=tilt)
        yield from self._move(
            env, lambda: over(spec.height + 0.03), tol=0.008, max_steps=30, speed=0.7, gain=1.5, tilt_scale=tilt
        )
        yield from self._move(
            env, lambda: over(spec.height), tol=0.003, max_steps=30, speed=0.4, gain=1.5, tilt_scale=tilt
        )
        hold = over(spec.height)
        yield from self._gripper(env, CLOSE, 9, hold, tilt_scale=spec.tilt)
        z0 = env.object_poses()[obj][2, 3]

        def lifted() -> bool:
            return env.object_poses()[obj][2, 3] - z0 > 0.03

        up = hold[0] + np.array([0.0, 0.0, 0.05])
        yield from self._move(
            env, lambda: (up, rot), tol=0.01, max_steps=20, speed=0.6, done_when=lifted, tilt_scale=tilt
        )
        if not lifted():
            self.log.append(f"pick {obj} failed (finger gap {float(np.sum(np.abs(env.gripper_qpos()))):.4f})")
            yield from self._gripper(env, OPEN, 5, (env.eef_pose()[:3, 3], rot), tilt_scale=spec.tilt)
            yield from self._move(env, lambda: (up + np.array([0.0, 0.0, 0.03]), rot), tol=0.01, max_steps=15)
            return False
        return True

    # -- place -----------------------------------------------------------------------------
    def _place(self, env: SimEnv, obj: str) -> Script:
        """Carry the held ``obj`` to its seat, lower it in, release it and back off."""
        goal_yaw = self._landing_yaw(env, obj)
        goal_rot = rot_z(goal_yaw)
        if obj == "piece_1":
            # The plate drops through the hole onto the table; its bottom centre goes over the hole.
            key_local, seat_name, seat_local = (0.0, 0.0, -PIECE_1_HALF), "base", (0.0, 0.0, BASE_HALF_HEIGHT)

            def seat_z() -> float:
                return TABLE_Z

        else:
            # The slot's bottom centre goes over the ridge's top; the legs stand on the base's top.
            key_local, seat_name, seat_local = (0.0, 0.0, -PIECE_2_HALF_HEIGHT), "piece_1", (0.0, 0.0, RIDGE_TOP)

            def seat_z() -> float:
                return float(env.object_poses()["base"][2, 3] + BASE_HALF_HEIGHT)

        def key() -> np.ndarray:
            return self._point(env, obj, key_local)

        def seat() -> np.ndarray:
            return self._point(env, seat_name, seat_local)

        def yaw_error() -> float:
            return wrap(goal_yaw - yaw_of(env.object_poses()[obj][:3, :3]), 2 * math.pi)

        def fade() -> float:
            # Full reach tilt (see ScriptExpertBase._reach_guarded) while high above the seat,
            # LAND_TILT of it when about to touch: a vertical hand is out of reach at the far edge,
            # and a few degrees of tilt still fit the clearance (the tilt axis is across the
            # reach, which _landing_yaw makes the ridge's direction).
            gap = key()[2] - seat()[2]
            return LAND_TILT + (1.0 - LAND_TILT) * float(np.clip((gap - 0.01) / 0.04, 0.0, 1.0))

        def aligned_rot() -> np.ndarray:
            # The hand rotation that turns the held piece to the landing yaw, level but for the
            # reach tilt. Working on the *piece's* measured orientation also undoes its tilt in
            # the grasp: the pads hold it at one spot, so it pivots about the finger axis when the
            # carry accelerates, and friction keeps it there.
            wanted = self._reach_guarded(env, goal_rot, fade())
            correction = axis_angle(wanted @ env.object_poses()[obj][:3, :3].T)
            norm = float(np.linalg.norm(correction))
            if norm > self.MAX_LEVELLING:
                correction *= self.MAX_LEVELLING / norm
            return _rotvec(correction) @ env.eef_pose()[:3, :3]

        def no_tilt() -> float:
            return 0.0  # aligned_rot() already includes the reach tilt

        # Where the piece sits in the hand right after the grasp; it counts as held while the
        # hand's grasp point stays within 2 cm of it.
        grip_local = env.object_poses()[obj][:3, :3].T @ (env.eef_pose()[:3, 3] - env.object_poses()[obj][:3, 3])

        def held() -> bool:
            return bool(np.linalg.norm(self._point(env, obj, tuple(grip_local)) - env.eef_pose()[:3, 3]) < 0.02)

        def lowest() -> float:
            """Lowest point of the held piece (it tilts with the gripper far from the robot)."""
            pose = env.object_poses()[obj]
            half = np.array([PIECE_1_HALF] * 3) if obj == "piece_1" else np.array([0.06, 0.06, 0.08])
            return float(pose[2, 3] - np.abs(pose[2, :3]) @ half)

        def target(key_z: float | None, z_gap: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
            """Eef pose putting the key point over the seat, at ``key_z`` or else with the piece's
            lowest point ``z_gap`` above the other pieces."""
            pos = env.eef_pose()[:3, 3].copy()
            pos[:2] += seat()[:2] - key()[:2]
            if key_z is not None:
                pos[2] += key_z - key()[2]
            else:
                pos[2] += self._tops(env, obj) + z_gap - lowest()
            return pos, aligned_rot()

        def dropped() -> bool:
            return not held()

        # Straight up until the piece clears everything, turning to the landing yaw meanwhile.
        up = env.eef_pose()[:3, 3].copy()
        up[2] += max(self._tops(env, obj) + self.CARRY_CLEARANCE - lowest(), 0.0)
        yield from self._move(
            env, lambda: (up, aligned_rot()), tol=0.01, rot_tol=0.15, max_steps=30, gain=1.5, tilt_scale=no_tilt
        )
        carry_gap = max(lowest() - self._tops(env, obj), self.CARRY_CLEARANCE)
        yield from self._move(
            env,
            lambda: target(None, carry_gap),
            tol=0.008,
            rot_tol=0.06,
            max_steps=80,
            gain=1.5,
            done_when=dropped,
            tilt_scale=no_tilt,
        )

        seated = False
        for tries in range(4):
            if dropped():
                break
            hover = lambda: target(seat()[2] + self.HOVER_ABOVE_TARGET)  # noqa: E731
            yield from self._move(env, hover, tol=0.01, rot_tol=0.05, max_steps=40, gain=1.5, tilt_scale=no_tilt)

            def centred() -> bool:
                err = np.linalg.norm(key()[:2] - seat()[:2])
                return bool(err < self.ALIGN_XY_TOL and abs(yaw_error()) < self.ALIGN_YAW_TOL)

            yield from self._servo(env, hover, steps=25, done_when=centred, tilt_scale=no_tilt)
            seated = yield from self._lower(env, key, seat, seat_z, aligned_rot, no_tilt, held)
            if seated or dropped():
                break
            self.log.append(f"{obj} stuck {1000 * (key()[2] - seat_z()):.1f} mm above its seat (try {tries})")
            back = target(seat()[2] + self.HOVER_ABOVE_TARGET + 0.01)[0]
            yield from self._move(
                env, lambda back=back: (back, aligned_rot()), tol=0.006, max_steps=15, speed=0.5, tilt_scale=no_tilt
            )
        if dropped():
            self.log.append(f"lost {obj} while placing")

        # Release while holding still, then back straight up, bringing the rest of the reach tilt
        # back only once the fingers are clear of the piece.
        hold = (env.eef_pose()[:3, 3].copy(), env.eef_pose()[:3, :3].copy())
        yield from self._gripper(env, OPEN, 6, hold, tilt_scale=0.0)
        up = hold[0] + np.array([0.0, 0.0, 0.07])

        def regain() -> float:
            rise = float(np.clip((env.eef_pose()[2, 3] - hold[0][2] - 0.03) / 0.04, 0.0, 1.0))
            return (1.0 - LAND_TILT) * rise

        yield from self._move(env, lambda: (up, hold[1]), tol=0.01, max_steps=25, speed=0.6, tilt_scale=regain)
        done = self._piece_1_done(env) if obj == "piece_1" else self._piece_2_done(env)
        if not done:
            self.log.append(f"placing {obj} failed")
        return done

    def _landing_yaw(self, env: SimEnv, obj: str) -> float:
        """The landing yaw of ``obj``: little wrist rotation, and far from the robot (where the hand
        is tilted across the reach direction) piece_1's ridge along the reach direction, so that
        the tilt is about an axis across the ridge and piece_2's slot still slides over it."""
        piece_yaw = yaw_of(env.object_poses()[obj][:3, :3])
        phi = finger_yaw(env.eef_pose()[:3, :3])
        radial = env.object_poses()["base"][:2, 3] - env.robot_base_pos()[:2]
        reach = float(np.linalg.norm(radial))
        radial_heading = math.atan2(radial[1], radial[0])
        far = float(np.clip((reach - TILT_START_REACH) / 0.04, 0.0, 1.0))

        def cost(yaw: float) -> float:
            wrist = abs(wrap(phi + wrap(yaw - piece_yaw, 2 * math.pi), 2 * math.pi))
            ridge_heading = yaw + math.pi / 2.0  # the ridge/slot runs along the piece's y axis
            across = abs(math.sin(ridge_heading - radial_heading)) if obj == "piece_1" else 0.0
            return wrist + 2.0 * far * across

        return min(self._landing_yaws(env, obj), key=cost)

    def _servo(
        self,
        env: SimEnv,
        target: Callable[[], tuple[np.ndarray, np.ndarray]],
        steps: int,
        done_when: Callable[[], bool],
        tilt_scale: Callable[[], float],
    ) -> Script:
        """Track ``target()`` (with a slow integral term) until ``done_when()`` or ``steps`` run out."""
        integral = np.zeros(3)
        for _ in range(steps):
            if done_when():
                return True
            pos, rot = target()
            err = pos - env.eef_pose()[:3, 3]
            integral = np.clip(integral + 0.1 * err, -0.01, 0.01)
            yield self._action(env, pos + integral, self._reach_guarded(env, rot, tilt_scale()), speed=0.3, gain=1.5)
        return False

    def _lower(
        self,
        env: SimEnv,
        key: Callable[[], np.ndarray],
        seat: Callable[[], np.ndarray],
        seat_z: Callable[[], float],
        rot: Callable[[], np.ndarray],
        tilt_scale: Callable[[], float],
        held: Callable[[], bool],
    ) -> Script:
        """Lower the held piece until its key point reaches ``seat_z()``; False if it gets stuck.

        The horizontal correction has its own gain and is not scaled down with the slow vertical
        speed: close to the robot the OSC controller drifts sideways by several millimetres while
        descending, which is the whole clearance. The descent pauses while the key point is more
        than ``DESCENT_XY_TOL`` off-centre.
        """
        best = key()[2]
        stalled = 0
        integral = np.zeros(2)
        hold_z = env.eef_pose()[2, 3]
        for _ in range(90):
            if not held():
                return False
            k = key()
            if k[2] < seat_z() + 0.003:
                return True
            if k[2] < best - 0.001:
                best, stalled = k[2], 0
            else:
                stalled += 1
                if stalled >= 10:
                    return bool(k[2] < seat_z() + 0.006)
            err = seat()[:2] - k[:2]
            integral = np.clip(integral + 0.15 * err, -0.01, 0.01)
            dpos = np.zeros(3)
            dpos[:2] = np.clip(2.0 * (err + integral) / POS_SCALE, -0.5, 0.5)
            eef_z = env.eef_pose()[2, 3]
            if np.linalg.norm(err) < self.DESCENT_XY_TOL:
                dpos[2] = -self.DESCENT_SPEED
                hold_z = eef_z
            else:
                # Hold the height (a zero delta lets the arm sag or creep) while re-centring.
                dpos[2] = float(np.clip(1.5 * (hold_z - eef_z) / POS_SCALE, -0.3, 0.3))
            target_rot = self._reach_guarded(env, rot(), tilt_scale())
            drot = np.clip(axis_angle(target_rot @ env.eef_pose()[:3, :3].T) / ROT_SCALE, -1.0, 1.0)
            yield np.concatenate([dpos, drot, [self._grip]])
        return bool(key()[2] < seat_z() + 0.006)
