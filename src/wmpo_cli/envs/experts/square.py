"""Scripted expert for ``square``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from wmpo_cli.envs.experts.base import (
    CLOSE,
    FINGER_HALF_WIDTH,
    OPEN,
    Script,
    ScriptExpertBase,
    axis_angle,
    finger_yaw,
    grasp_rotation,
    rotation_matrix,
    wrap,
    yaw_of,
)

if TYPE_CHECKING:
    from wmpo_cli.envs.sim import SimEnv

TABLE_TOP_Z = 0.82
PEG_TOP_Z = 0.95
NUT_HALF_HEIGHT = 0.01
RING_OUTER = 0.04375  # nut-local x where the ring ends and the free part of the handle begins
HANDLE_END = 0.07925  # nut-local x of the handle's tip
Q7_SAFE = 2.6  # |last joint| kept below this (limit ±2.897 rad) when choosing a wrist turn


class SquareExpert(ScriptExpertBase):
    """Square: grasp the nut by its handle, carry it over the square peg, lower it around the peg.

    The grasp point is on the free part of the handle, far enough out (``GRASP_X``) that the fingers
    land beside the handle and never on the ring, whatever the handle's heading; the finger axis runs
    across the handle, and the hand is kept level across the fingers during the grasp (see
    ``_reach_guarded``). The approach is closed-loop on the measured nut pose, and a miss (nut not
    lifted) is retried from the current state. Once lifted, the *measured* nut centre (not the eef)
    is servoed over the peg axis, turned so its faces match the peg's with the handle on the side
    nearest the robot (far pegs are otherwise out of reach), then lowered slowly while re-centring;
    a jam (the nut still above the peg's upper part) lifts and retries. The nut is released low on
    the peg and the hand leaves upwards.
    """

    # Grasp point on the handle: the fingers (±FINGER_HALF_WIDTH along the handle) clear the ring by
    # 7 mm, which absorbs the arm's tracking error, and stay 6 mm inside the handle's tip.
    GRASP_X = RING_OUTER + FINGER_HALF_WIDTH + 0.00725
    assert GRASP_X + FINGER_HALF_WIDTH < HANDLE_END
    GRASP_DZ = 0.002  # eef site height above the nut centre when closing
    CARRY_CLEARANCE = 0.025  # nut bottom above the peg top while moving over it
    RELEASE_NUT_Z = 0.845

    def __init__(self, noise: float = 0.0) -> None:
        super().__init__(noise)
        self._level_fingers = False

    def _reach_guarded(self, env: SimEnv, target_rot: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """The base reach tilt, restricted while grasping to a roll about the finger axis.

        The base tilt turns the pointing axis away from the robot. When the finger axis is radial
        (handle pointing sideways) that dips the outer fingertip by up to ≈1.5 cm: it hits the
        table and the hand stops above the 2 cm handle. Keeping only the tilt component about the
        finger axis leaves both fingertips at the same height.
        """
        tilted = super()._reach_guarded(env, target_rot, scale)
        if not self._level_fingers:
            return tilted
        vec = axis_angle(tilted @ target_rot.T)
        finger = target_rot[:, 0] / np.linalg.norm(target_rot[:, 0])
        return rotation_matrix(finger * float(vec @ finger)) @ target_rot

    def _run(self, env: SimEnv) -> Script:
        for attempt in range(4):
            if not self._held(env):
                self.log.append(f"attempt {attempt}: grasp")
                if not (yield from self._grasp(env)):
                    continue
            self.log.append(f"attempt {attempt}: insert")
            if (yield from self._insert(env)):
                return True
        return False

    # -- helpers ---------------------------------------------------------------------------
    def _nut(self, env: SimEnv) -> np.ndarray:
        return env.object_poses()["nut"]

    def _peg(self, env: SimEnv) -> np.ndarray:
        return env.object_poses()["peg"]

    def _held(self, env: SimEnv) -> bool:
        """The nut hangs in the closed gripper (well above the table, near the hand)."""
        nut = self._nut(env)[:3, 3]
        near = float(np.linalg.norm(nut - env.eef_pose()[:3, 3])) < self.GRASP_X + 0.02
        return bool(self._grip == CLOSE and nut[2] > TABLE_TOP_Z + 0.03 and near)

    def _grasp_point(self, env: SimEnv) -> np.ndarray:
        nut = self._nut(env)
        return nut[:3, 3] + nut[:3, 0] * self.GRASP_X

    # -- grasp -----------------------------------------------------------------------------
    def _grasp(self, env: SimEnv) -> Script:
        self._grip = OPEN
        self._level_fingers = True
        # Finger axis (heading φ + 90°) along the nut's local y, i.e. φ = nut yaw modulo π; pick the
        # representative nearest the current wrist yaw so the hand turns at most 90°.
        phi0 = finger_yaw(env.eef_pose()[:3, :3])
        phi = phi0 + wrap(yaw_of(self._nut(env)[:3, :3]) - phi0, math.pi)
        rot = grasp_rotation(phi)

        def over(height: float) -> tuple[np.ndarray, np.ndarray]:
            pos = self._grasp_point(env)
            pos[2] = self._nut(env)[2, 3] + height
            return pos, rot

        if env.eef_pose()[2, 3] < self._nut(env)[2, 3] + 0.04:
            up = env.eef_pose()[:3, 3] + np.array([0.0, 0.0, 0.05])
            yield from self._move(env, lambda: (up, rot), tol=0.01, max_steps=15)
        yield from self._move(env, lambda: over(0.08), tol=0.01, rot_tol=0.08, max_steps=60, gain=1.5)
        yield from self._move(env, lambda: over(0.03), tol=0.006, max_steps=30, speed=0.7, gain=1.5)
        yield from self._move(env, lambda: over(self.GRASP_DZ), tol=0.003, max_steps=40, speed=0.4, gain=1.5)
        hold = over(self.GRASP_DZ)
        yield from self._gripper(env, CLOSE, 10, hold)
        z0 = self._nut(env)[2, 3]

        def lifted() -> bool:
            return self._nut(env)[2, 3] - z0 > 0.03

        up = hold[0] + np.array([0.0, 0.0, 0.06])
        yield from self._move(env, lambda: (up, rot), tol=0.01, max_steps=25, speed=0.7, done_when=lifted)
        self._level_fingers = False
        if not lifted():
            self.log.append(f"grasp missed (gripper {env.gripper_qpos().round(4).tolist()})")
            yield from self._gripper(env, OPEN, 6, (env.eef_pose()[:3, 3], rot))
            return False
        return True

    # -- insert ----------------------------------------------------------------------------
    def _insert_yaw(self, env: SimEnv) -> float:
        """Wrist turn (rad) that matches the nut's faces to the peg's with the best handle heading.

        Any of the four face-matching nut yaws fits the peg; the handle (and the hand holding it)
        then ends 6 cm from the peg axis in that direction. For pegs far from the robot the hand
        must stay on the near side, or the arm is stretched to its limit and the nut tilts. Turns
        beyond ≈100° or that would push the last joint near its limit are ruled out.
        """
        nut = self._nut(env)
        peg = self._peg(env)
        base = env.robot_base_pos()[:2]
        q7 = float(env.arm_qpos()[6])
        base_turn = wrap(yaw_of(peg[:3, :3]) - yaw_of(nut[:3, :3]), math.pi / 2.0)
        best, best_cost = base_turn, math.inf
        for k in (-2, -1, 0, 1, 2):
            turn = base_turn + k * math.pi / 2.0
            if abs(turn) > math.radians(100) or abs(q7 + turn) > Q7_SAFE:
                continue
            heading = yaw_of(nut[:3, :3]) + turn
            hand = peg[:2, 3] + self.GRASP_X * np.array([math.cos(heading), math.sin(heading)])
            cost = float(np.linalg.norm(hand - base)) + 0.02 * abs(turn)
            if cost < best_cost:
                best, best_cost = turn, cost
        return best

    def _insert(self, env: SimEnv) -> Script:
        phi0 = finger_yaw(env.eef_pose()[:3, :3])
        rot = grasp_rotation(phi0 + self._insert_yaw(env))

        def dropped() -> bool:
            nut_z = self._nut(env)[2, 3]
            return nut_z < env.eef_pose()[2, 3] - 0.05 or nut_z < TABLE_TOP_Z + 0.02

        def target(nut_bottom_z: float) -> tuple[np.ndarray, np.ndarray]:
            # Move the eef so that the measured nut centre (not the eef) ends over the peg axis.
            nut = self._nut(env)
            peg = self._peg(env)
            pos = env.eef_pose()[:3, 3].copy()
            pos[:2] += peg[:2, 3] - nut[:2, 3]
            pos[2] += nut_bottom_z - (nut[2, 3] - NUT_HALF_HEIGHT)
            return pos, rot

        carry = PEG_TOP_Z + self.CARRY_CLEARANCE
        for attempt in range(3):
            nut0 = self._nut(env)
            up = env.eef_pose()[:3, 3].copy()
            up[2] += max(carry - (nut0[2, 3] - NUT_HALF_HEIGHT), 0.0)
            yield from self._move(env, lambda up=up: (up, rot), tol=0.015, rot_tol=0.2, max_steps=25, done_when=dropped)
            yield from self._move(
                env, lambda: target(carry), tol=0.004, rot_tol=0.03, max_steps=80, gain=1.5, done_when=dropped
            )
            if dropped():
                self.log.append("dropped the nut while carrying")
                return False
            yield from self._move(
                env,
                lambda: target(PEG_TOP_Z + 0.008),
                tol=0.002,
                rot_tol=0.03,
                max_steps=30,
                speed=0.4,
                gain=1.5,
                done_when=dropped,
            )
            yield from self._move(
                env,
                lambda: target(self.RELEASE_NUT_Z - NUT_HALF_HEIGHT - 0.01),
                tol=0.004,
                max_steps=50,
                speed=0.3,
                gain=1.5,
                done_when=lambda: self._nut(env)[2, 3] < self.RELEASE_NUT_Z or dropped(),
            )
            nut = self._nut(env)
            err = float(np.linalg.norm(nut[:2, 3] - self._peg(env)[:2, 3]))
            # Below the peg top and centred: the nut is around the peg and gravity finishes the job.
            if nut[2, 3] < PEG_TOP_Z - 0.03 and err < 0.015:
                break
            self.log.append(f"insertion {attempt} jammed at nut z {nut[2, 3]:.4f}, xy err {err:.4f}")
        else:
            return False
        self.log.append(f"released at nut z {nut[2, 3]:.4f}, xy err {err:.4f}")
        hold = (env.eef_pose()[:3, 3].copy(), rot)
        yield from self._gripper(env, OPEN, 6, hold)
        up = hold[0] + np.array([0.0, 0.0, 0.06])
        yield from self._move(env, lambda: (up, rot), tol=0.01, max_steps=20, speed=0.6)
        return bool(env.is_success())
