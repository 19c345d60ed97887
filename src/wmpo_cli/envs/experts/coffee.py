"""Scripted expert for ``coffee``: pod into the holder, then close the lid.

Plan (reference §12): grasp the pod from above, lift it clear of the machine, servo the *measured*
pod over the holder (0.7 mm of radial clearance, so the pod is aligned to < 1 mm before it is
dropped the last few millimetres), release, then close the lid by sweeping the closed fingers
along an arc about the hinge from behind the open lid. Every phase re-reads the poses each step
and is retried if its check fails.

The finger axis is kept along the machine's x axis (parallel to the hinge) throughout: the hand is
20 cm long along the finger axis but only 6.4 cm across, so this is the orientation in which it
fits in front of the open lid while placing the pod, and in which the closed fingers form a
narrow pusher for the lid.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from wmpo_cli.envs.coffee import (
    HOLDER_HALF_HEIGHT,
    LID_CENTER,
    LID_HALF,
    LID_HINGE_LOCAL,
    POD_HALF_HEIGHT,
)
from wmpo_cli.envs.experts.base import (
    CLOSE,
    FINGER_HALF_WIDTH,
    FINGERTIP_BELOW_SITE,
    OPEN,
    TABLE_Z,
    Script,
    ScriptExpertBase,
    finger_yaw,
    grasp_rotation,
    wrap,
    yaw_of,
)

if TYPE_CHECKING:
    from wmpo_cli.envs.sim import SimEnv

# Hinge axis position in the machine frame (x axis through the lid's back edge).
HINGE = np.array(LID_CENTER) + np.array(LID_HINGE_LOCAL)


class CoffeeExpert(ScriptExpertBase):
    """Coffee: pick the pod, drop it into the holder, sweep the lid shut, retreat."""

    GRASP_BELOW_TOP = 0.012  # grip site below the pod top: pads on the pod's upper half
    CARRY_CLEARANCE = 0.045  # pod bottom above the holder rim while travelling
    RELEASE_GAP = 0.005  # pod bottom above the rim when it is let go
    ALIGN_TOL = 0.0007  # pod–holder xy error before release (radial clearance 0.7 mm)
    SEATED_HEIGHT = 0.012  # pod centre above the holder centre when seated (0.0055–0.0071)
    PUSH_RADIUS = 0.08  # distance from the hinge at which the fingers push the lid
    PUSH_OFFSET = LID_HALF[2] + FINGER_HALF_WIDTH  # finger centre off the lid's mid-plane
    SWEEP_STEP = 0.07  # rad per step of the commanded push angle
    LID_DONE = math.radians(8.0)
    # Eef height for travelling over the machine: the open lid reaches ≈1.10 m, the pod hangs
    # ≈3.5 cm below the grip site.
    SAFE_Z = TABLE_Z + 0.39
    # Machine-frame regions (x half width, y min, y max) the hand must not sweep through low: the
    # whole machine on the way to the pod, the body and open lid on the way to the holder.
    WHOLE_MACHINE = (0.16, -0.23, 0.21)
    BODY_AND_LID = (0.15, -0.22, 0.085)

    def _run(self, env: SimEnv) -> Script:
        seated = False
        for attempt in range(4):
            self.log.append(f"pod attempt {attempt}")
            if not (yield from self._pick(env)):
                continue
            if (yield from self._insert(env)):
                seated = True
                break
        if not seated:
            return False
        for attempt in range(3):
            self.log.append(f"lid attempt {attempt}")
            if (yield from self._close_lid(env)):
                return True
        return False

    # -- geometry ----------------------------------------------------------------------------
    @staticmethod
    def _machine(env: SimEnv) -> np.ndarray:
        return env.object_poses()["coffee_machine"]

    def _finger_rot(self, env: SimEnv) -> np.ndarray:
        """Pointing down, finger axis along the machine's x axis (the nearer of the two headings)."""
        phi0 = finger_yaw(env.eef_pose()[:3, :3])
        phi = yaw_of(self._machine(env)[:3, :3]) - math.pi / 2.0
        return grasp_rotation(phi0 + wrap(phi - phi0, math.pi))

    @staticmethod
    def _hinge_angle(env: SimEnv) -> float:
        return float(env.raw.hinge_angle())

    def _pod_rel_holder(self, env: SimEnv) -> np.ndarray:
        """Pod position in the holder frame."""
        poses = env.object_poses()
        holder = poses["pod_holder"]
        return holder[:3, :3].T @ (poses["coffee_pod"][:3, 3] - holder[:3, 3])

    def _seated(self, env: SimEnv) -> bool:
        rel = self._pod_rel_holder(env)
        return bool(np.linalg.norm(rel[:2]) < 0.003 and rel[2] < self.SEATED_HEIGHT)

    def _path_blocked(self, env: SimEnv, goal: np.ndarray, region: tuple[float, float, float]) -> bool:
        """Whether the straight horizontal path eef → ``goal`` crosses ``region`` of the machine."""
        machine = self._machine(env)
        start = env.eef_pose()[:3, 3]
        for t in np.linspace(0.0, 1.0, 25):
            point = start + t * (goal - start)
            local = machine[:3, :3].T @ (point - machine[:3, 3])
            if abs(local[0]) < region[0] and region[1] < local[1] < region[2]:
                return True
        return False

    def _over_the_top(self, env: SimEnv, goal: np.ndarray, rot: np.ndarray) -> Script:
        """Rise to SAFE_Z, then cross to above ``goal``, if the direct path would hit the machine."""
        lift = env.eef_pose()[:3, 3].copy()
        lift[2] = max(lift[2], self.SAFE_Z)
        yield from self._move(env, lambda: (lift, rot), tol=0.02, max_steps=40, gain=1.5)
        high = np.array([goal[0], goal[1], max(goal[2], self.SAFE_Z)])
        yield from self._move(env, lambda: (high, rot), tol=0.02, max_steps=60, gain=1.5)
        return True

    # -- pick ------------------------------------------------------------------------------
    def _pick(self, env: SimEnv) -> Script:
        rot = self._finger_rot(env)
        self._grip = OPEN

        def over(height: float) -> tuple[np.ndarray, np.ndarray]:
            pod = env.object_poses()["coffee_pod"]
            pos = pod[:3, 3].copy()
            # The top of the pod whatever its attitude (it may lie on its side after a failed drop).
            top = pos[2] + POD_HALF_HEIGHT * abs(pod[2, 2]) + 0.0243 * math.sqrt(max(0.0, 1.0 - pod[2, 2] ** 2))
            pos[2] = top - self.GRASP_BELOW_TOP + height
            return pos, rot

        # Rise first if low (e.g. right after a failed drop next to the holder), then hover.
        eef = env.eef_pose()[:3, 3]
        if eef[2] < TABLE_Z + 0.2:
            up = eef + np.array([0.0, 0.0, 0.06])
            yield from self._move(env, lambda: (up, rot), tol=0.015, max_steps=15)
        if self._path_blocked(env, over(0.08)[0], self.WHOLE_MACHINE):
            yield from self._over_the_top(env, over(0.08)[0], rot)
        yield from self._move(env, lambda: over(0.08), tol=0.01, rot_tol=0.08, max_steps=70, gain=1.5)
        yield from self._move(env, lambda: over(0.02), tol=0.006, max_steps=30, speed=0.7, gain=1.5)
        yield from self._move(env, lambda: over(0.0), tol=0.003, max_steps=30, speed=0.4, gain=1.5)
        hold = over(0.0)
        yield from self._gripper(env, CLOSE, 8, hold)
        z0 = env.object_poses()["coffee_pod"][2, 3]
        up = hold[0] + np.array([0.0, 0.0, 0.05])

        def lifted() -> bool:
            return bool(env.object_poses()["coffee_pod"][2, 3] - z0 > 0.03)

        yield from self._move(env, lambda: (up, rot), tol=0.01, max_steps=20, speed=0.6, done_when=lifted)
        if not (lifted() and env.raw.pod_grasped()):
            self.log.append("pick failed")
            yield from self._gripper(env, OPEN, 5, (env.eef_pose()[:3, 3], rot))
            return False
        return True

    # -- insert ----------------------------------------------------------------------------
    def _insert(self, env: SimEnv) -> Script:
        rot = self._finger_rot(env)

        def pod_goal(bottom_above_rim: float) -> tuple[np.ndarray, np.ndarray]:
            poses = env.object_poses()
            holder, pod = poses["pod_holder"][:3, 3], poses["coffee_pod"][:3, 3]
            goal = holder + np.array([0.0, 0.0, HOLDER_HALF_HEIGHT + bottom_above_rim + POD_HALF_HEIGHT])
            # Steer the measured pod, not the eef: corrects the grasp offset.
            return env.eef_pose()[:3, 3] + (goal - pod), rot

        def dropped() -> bool:
            return not env.raw.pod_grasped() and env.object_poses()["coffee_pod"][2, 3] < env.eef_pose()[2, 3] - 0.04

        # Straight up to carrying height, then across, then down to just above the rim.
        carry = pod_goal(self.CARRY_CLEARANCE)[0]
        up = env.eef_pose()[:3, 3].copy()
        up[2] = max(up[2], carry[2])
        yield from self._move(env, lambda: (up, rot), tol=0.015, max_steps=25, gain=1.5, done_when=dropped)
        if self._path_blocked(env, pod_goal(self.CARRY_CLEARANCE)[0], self.BODY_AND_LID):
            yield from self._over_the_top(env, pod_goal(self.CARRY_CLEARANCE)[0], rot)
        yield from self._move(
            env, lambda: pod_goal(self.CARRY_CLEARANCE), tol=0.008, max_steps=80, gain=1.5, done_when=dropped
        )
        yield from self._move(
            env,
            lambda: pod_goal(self.RELEASE_GAP),
            tol=0.002,
            max_steps=40,
            speed=0.4,
            gain=1.5,
            done_when=dropped,
        )
        if dropped():
            self.log.append("pod dropped while carrying")
            return False
        # Fine alignment: the pod must be centred to well under the 0.7 mm clearance before letting go.
        good = 0
        for _ in range(40):
            rel = self._pod_rel_holder(env)
            good = good + 1 if np.linalg.norm(rel[:2]) < self.ALIGN_TOL else 0
            if good >= 3:
                break
            pos, _ = pod_goal(self.RELEASE_GAP)
            yield self._action(env, pos, self._reach_guarded(env, rot), speed=0.15, gain=2.0)
        hold = (env.eef_pose()[:3, 3].copy(), rot)
        yield from self._gripper(env, OPEN, 6, hold)
        for _ in range(6):
            yield self._action(env, hold[0], self._reach_guarded(env, rot), speed=0.3)
        up = hold[0] + np.array([0.0, 0.0, 0.06])
        yield from self._move(env, lambda: (up, rot), tol=0.01, max_steps=20, speed=0.5)
        if not self._seated(env):
            self.log.append(f"pod not seated: rel {np.round(self._pod_rel_holder(env), 4).tolist()}")
            return False
        return True

    # -- lid -------------------------------------------------------------------------------
    def _push_point(self, env: SimEnv, alpha: float) -> np.ndarray:
        """World eef-site target that puts the closed fingers against the lid's top at angle ``alpha``."""
        machine = self._machine(env)
        along = np.array([0.0, math.cos(alpha), math.sin(alpha)])
        normal = np.array([0.0, -math.sin(alpha), math.cos(alpha)])  # lid top-face normal at alpha
        local = HINGE + self.PUSH_RADIUS * along + self.PUSH_OFFSET * normal
        tip = machine[:3, :3] @ local + machine[:3, 3]
        return tip + np.array([0.0, 0.0, FINGERTIP_BELOW_SITE])

    def _close_lid(self, env: SimEnv) -> Script:
        rot = self._finger_rot(env)
        self._grip = CLOSE
        theta = self._hinge_angle(env)
        alpha = min(theta + 0.35, 2.55)
        start = self._push_point(env, alpha)
        above = start + np.array([0.0, 0.0, 0.08])
        # Close the fingers while rising clear of the holder, then come down behind the lid.
        eef = env.eef_pose()[:3, 3].copy()
        rise = eef.copy()
        rise[2] = max(eef[2], above[2])
        yield from self._move(env, lambda: (rise, rot), tol=0.015, max_steps=20)
        yield from self._move(env, lambda: (above, rot), tol=0.01, max_steps=60, gain=1.5)
        yield from self._move(env, lambda: (start, rot), tol=0.006, max_steps=30, speed=0.5, gain=1.5)
        # Sweep the fingers along the arc; the commanded angle only advances while the hand keeps
        # up, so the push never runs ahead of the arm.
        end = -0.15
        for _ in range(120):
            target = self._push_point(env, alpha)
            if np.linalg.norm(target - env.eef_pose()[:3, 3]) < 0.015:
                alpha = max(alpha - self.SWEEP_STEP, end)
            if alpha <= end and self._hinge_angle(env) < self.LID_DONE:
                break
            yield self._action(env, self._push_point(env, alpha), self._reach_guarded(env, rot), speed=0.6, gain=1.5)
        for _ in range(4):
            yield self._action(env, self._push_point(env, end), self._reach_guarded(env, rot), speed=0.3)
        up = env.eef_pose()[:3, 3] + np.array([0.0, 0.0, 0.08])
        yield from self._move(env, lambda: (up, rot), tol=0.01, max_steps=20, speed=0.5)
        ok = self._hinge_angle(env) < self.LID_DONE
        if not ok:
            self.log.append(f"lid still open: {math.degrees(self._hinge_angle(env)):.1f} deg")
        return ok
