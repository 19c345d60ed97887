"""Scripted expert for ``stack_three``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from wmpo_cli.envs.experts.base import (
    CLOSE,
    FINGER_HALF_WIDTH,
    FINGER_INNER_OPEN,
    FINGER_OUTER_OPEN,
    FINGERTIP_BELOW_SITE,
    HAND_BOTTOM_ABOVE_SITE,
    HAND_HALF_LENGTH,
    HAND_HALF_WIDTH,
    LAND_TILT,
    OPEN,
    POS_SCALE,
    ROT_SCALE,
    TABLE_Z,
    TILT_FULL_REACH,
    TILT_START_REACH,
    Script,
    ScriptExpertBase,
    axis_angle,
    box_xy_distance,
    finger_yaw,
    grasp_rotation,
    nearest_grasp_yaw,
    wrap,
    yaw_of,
)

if TYPE_CHECKING:
    from wmpo_cli.envs.sim import SimEnv


@dataclass(frozen=True)
class _Block:
    """A cube as an obstacle: footprint centre, yaw, half size and top height."""

    center: np.ndarray
    yaw: float
    half: float
    top: float


class StackThreeExpert(ScriptExpertBase):
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
        base = nearest_grasp_yaw(cube_yaw, current_phi)
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


class StackThreeReactiveExpert(StackThreeExpert):
    """StackThree without memory: every action is a function of the current poses and finger gap.

    The scripted :class:`StackThreeExpert` is hard to imitate: its phases, captured hold targets,
    integral term and fixed gripper timing depend on the episode's history, which a policy that
    sees one frame cannot recover (a clone from the *true* state still fails). This expert decides
    everything from what a frame shows: which cube is next (A until A rests on B, then C), whether
    that cube is held (fingers closed on it, cube between them), and where the gripper is. Motion
    follows a funnel: the allowed height above the goal grows with the horizontal (and yaw) error,
    so the hand descends only once it is over the goal and rises first when it is too low to
    travel. Translation is softly saturated (tanh) rather than clipped, so actions vary smoothly
    instead of piling up on a speed cap. It never declares itself done: an episode it cannot solve
    runs to the collection horizon.
    """

    MAX_SPEED = 0.8  # soft cap of the translation action (units of 5 cm per step)
    POS_GAIN = 2.0
    ROT_GAIN = 1.5
    FUNNEL_SLOPE = 6.0  # allowed height (m) per metre of horizontal error beyond the dead zone
    FUNNEL_YAW = 0.15  # allowed height (m) per radian of yaw error beyond the dead zone
    DEAD_XY = 0.003
    DEAD_YAW = 0.03
    RISE_FIRST = 0.03  # below the funnel by this much, horizontal motion stops
    GRASP_TOL = 0.004
    KEEP_CLOSING_TOL = 0.008
    GRASP_YAW_TOL = 0.06
    OPEN_GAP = 0.074  # finger gap (sum of both finger joints) above which the gripper counts as open
    HELD_GAP = (0.030, 0.042)  # gap while closed on a 4 cm cube
    CARRY_CLEARANCE = 0.04

    def _run(self, env: SimEnv) -> Script:
        while True:
            yield self._reactive_action(env)

    # -- decision --------------------------------------------------------------------------
    def _reactive_action(self, env: SimEnv) -> np.ndarray:
        gap = float(np.sum(np.abs(env.gripper_qpos())))
        a_on_b = self._on_top(env, "cubeA", "cubeB")
        if a_on_b and self._on_top(env, "cubeC", "cubeA"):
            return self._retreat(env, gap)
        obj, support = ("cubeC", "cubeA") if a_on_b else ("cubeA", "cubeB")
        if self._holds(env, obj, gap):
            return self._carry(env, obj, support)
        return self._approach(env, obj, gap)

    def _holds(self, env: SimEnv, obj: str, gap: float) -> bool:
        offset = env.object_poses()[obj][:3, 3] - env.eef_pose()[:3, 3]
        return bool(
            self.HELD_GAP[0] < gap < self.HELD_GAP[1] and np.linalg.norm(offset[:2]) < 0.02 and abs(offset[2]) < 0.02
        )

    # -- behaviours ------------------------------------------------------------------------
    def _retreat(self, env: SimEnv, gap: float) -> np.ndarray:
        """Open in place, then rise straight up."""
        eef = env.eef_pose()
        rise = 0.05 if gap >= self.OPEN_GAP else 0.0
        return self._soft_action(env, eef[:3, 3] + np.array([0.0, 0.0, rise]), eef[:3, :3], OPEN)

    def _approach(self, env: SimEnv, obj: str, gap: float) -> np.ndarray:
        eef = env.eef_pose()
        pos = eef[:3, 3]
        cube = env.object_poses()[obj]
        grasp = cube[:3, 3] + np.array([0.0, 0.0, self.GRASP_ABOVE_CENTER])
        # The grasp yaw depends on the cubes only (scored from the reset heading), so it stays put
        # while the wrist turns.
        phi = self._choose_grasp(env, obj, 0.0)
        rot = self._reach_guarded(env, grasp_rotation(phi))
        yaw_err = abs(wrap(phi - finger_yaw(eef[:3, :3]), 2.0 * math.pi))
        err = grasp - pos
        if gap < self.OPEN_GAP:
            # Closing (or just released, or missed): keep closing only where a grasp is under way.
            if gap > self.HELD_GAP[0] and np.linalg.norm(err) < self.KEEP_CLOSING_TOL:
                return self._soft_action(env, grasp, rot, CLOSE)
            return self._soft_action(env, pos, eef[:3, :3], OPEN)
        if np.linalg.norm(err) < self.GRASP_TOL and yaw_err < self.GRASP_YAW_TOL:
            return self._soft_action(env, grasp, rot, CLOSE)
        hover = self._hover_height(env, obj)
        height = self._funnel(float(np.linalg.norm(err[:2])), yaw_err, hover - grasp[2])
        target = np.array([grasp[0], grasp[1], grasp[2] + height])
        return self._soft_action(env, target, rot, OPEN, rise_first=target[2] - pos[2])

    def _carry(self, env: SimEnv, obj: str, support: str) -> np.ndarray:
        eef = env.eef_pose()
        held = env.object_poses()[obj]
        xy, top, support_yaw = self._cube_surface(env, support)
        bottom = float(held[2, 3] - self.HALF[obj] * np.abs(held[2, :3]).sum())
        yaw_err = wrap(support_yaw - yaw_of(held[:3, :3]), math.pi / 2.0)
        err_xy = xy - held[:2, 3]
        others_top = max(b.top for n, b in self._blocks(env).items() if n != obj)
        carry = max(others_top + self.CARRY_CLEARANCE - top, self.PLACE_GAP)
        height = self.PLACE_GAP + self._funnel(float(np.linalg.norm(err_xy)), abs(yaw_err), carry)
        target = eef[:3, 3].copy()
        target[:2] += err_xy
        target[2] += top + height - bottom
        gap_to_surface = bottom - top
        tilt = LAND_TILT + (1.0 - LAND_TILT) * float(np.clip((gap_to_surface - 0.008) / 0.035, 0.0, 1.0))
        rot = self._reach_guarded(env, grasp_rotation(finger_yaw(eef[:3, :3]) + yaw_err), tilt)
        return self._soft_action(env, target, rot, CLOSE, rise_first=top + height - bottom)

    # -- primitives ------------------------------------------------------------------------
    def _funnel(self, xy_err: float, yaw_err: float, cap: float) -> float:
        """Height above the goal allowed at this horizontal / yaw error (0 once aligned)."""
        raw = self.FUNNEL_SLOPE * max(xy_err - self.DEAD_XY, 0.0) + self.FUNNEL_YAW * max(yaw_err - self.DEAD_YAW, 0.0)
        return float(min(raw, max(cap, 0.0)))

    def _soft_action(
        self, env: SimEnv, target_pos: np.ndarray, target_rot: np.ndarray, grip: float, rise_first: float = 0.0
    ) -> np.ndarray:
        """Proportional OSC delta, tanh-saturated; horizontal motion fades while far below the funnel."""
        eef = env.eef_pose()
        dpos = self.POS_GAIN * (target_pos - eef[:3, 3]) / POS_SCALE
        dpos[:2] *= float(np.clip(1.0 - rise_first / self.RISE_FIRST, 0.0, 1.0))  # 1 when not below
        dpos = _soft_limit(dpos, self.MAX_SPEED)
        drot = _soft_limit(self.ROT_GAIN * axis_angle(target_rot @ eef[:3, :3].T) / ROT_SCALE, 1.0)
        self._grip = grip
        return np.concatenate([dpos, drot, [grip]])


def _soft_limit(vec: np.ndarray, limit: float) -> np.ndarray:
    """Scale ``vec`` so its norm is ``limit·tanh(|vec|/limit)``: linear when small, never beyond ``limit``."""
    norm = float(np.linalg.norm(vec))
    if norm < 1e-9:
        return vec
    return vec * (limit * math.tanh(norm / limit) / norm)
