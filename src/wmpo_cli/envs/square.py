"""MimicGen's Square task (NutAssemblySquare, variants D0–D2) rebuilt on robosuite 1.5.2.

A square nut lies on the table of robosuite's ``PegsArena``; the task is solved when the nut sits
around the square peg (``peg1``) low on the table and the gripper has let go. Geometry, placement
ranges and the success test follow MimicGen (``/work/shared/reference/mimicgen-tasks.md`` §2);
the code is our own.

Two deliberate departures from MimicGen's construction, both forced by wmpo's one-model-per-process
design (``SimEnv`` restores flat [time, qpos, qvel] states and never reloads XML):

* MimicGen bakes the per-episode peg pose (D1, D2) into the XML body position. Here ``peg1`` gets
  three joints instead (slide x, slide y, hinge z) whose qpos *is* the peg pose, so the pose is part
  of every flat state. A huge armature and damping make the joints immovable for practical purposes
  (contact forces of tens of newtons move the peg by micrometres per episode); the slides are
  horizontal and the hinge vertical, so gravity never acts along them. Contacts between the peg
  and the table (the peg's box reaches 7 cm into it) are excluded.
* The round nut, which MimicGen parks off the table, is not in the model at all (fewer bodies,
  faster physics). The round peg stays at its fixed place in D0 and is removed in D1/D2, where
  MimicGen moves it far away (x = −10).

This module imports robosuite at import time; only :mod:`wmpo_cli.envs.sim` imports it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
from robosuite.models.arenas import PegsArena
from robosuite.models.objects import SquareNutObject
from robosuite.models.tasks import ManipulationTask
from robosuite.utils.mjcf_utils import array_to_string

from wmpo_cli.envs import observables as obs
from wmpo_cli.envs.render_utils import CheapRenderMixin
from wmpo_cli.envs.scene import check_option, table_arena, table_sampler, use_wide_agentview

VARIANTS: tuple[str, ...] = ("D0", "D1", "D2")
SCENARIOS: tuple[str, ...] = ("default", "disrupted")

# The wide ``agentview_full`` camera pose is used where the placement area grows beyond the view.
WIDE_CAMERA_VARIANTS: tuple[str, ...] = ("D2",)

TABLE_FULL_SIZE = (0.8, 0.8, 0.05)
TABLE_FRICTION = (1.0, 0.005, 0.0001)
TABLE_OFFSET = (0.0, 0.0, 0.82)  # PegsArena's table top is 2 cm higher than TableArena's
TABLE_TOP_Z = TABLE_OFFSET[2]

# Nut placement (offsets from the table centre) per variant: (x range, y range); yaw ~ U(0, 2π).
NUT_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "D0": ((-0.115, -0.11), (0.11, 0.225)),
    "D1": ((-0.115, 0.115), (-0.255, 0.255)),
    "D2": ((-0.25, 0.25), (-0.25, 0.25)),
}
NUT_Z_OFFSET = 0.02

# Square peg: its body pose in the XML is the D0 pose; the joints' qpos are offsets from it.
PEG1_DEFAULT_XY = (0.23, 0.1)
PEG1_HALF = (0.016, 0.016, 0.1)
PEG1_TOP_Z = 0.95
PEG1_RADIUS = math.hypot(PEG1_HALF[0], PEG1_HALF[1])
# Peg1 pose distribution per variant: (x range, y range, yaw range); None = fixed at the default.
PEG1_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None] = {
    "D0": None,
    "D1": ((-0.1, 0.3), (-0.2, 0.2), (0.0, 0.0)),
    "D2": ((-0.25, 0.25), (-0.25, 0.25), (0.0, math.pi / 2.0)),
}
# WMPO's "position" disruption: the square peg shifted towards -y by up to 4 cm (D0: y ∈ [0.06, 0.10]).
DISRUPTED_Y_SHIFT = (-0.04, 0.0)
PEG2_POS = (0.23, -0.1)  # round peg, D0 only

# Immovable peg joints: with damping c the peg creeps at F/c, i.e. 5e-7 m/s under 50 N of contact
# force; the armature keeps the velocity response to force spikes equally small.
PEG_JOINT_ARMATURE = 1e6
PEG_JOINT_DAMPING = 1e8
PEG1_JOINTS = ("peg1_slide_x", "peg1_slide_y", "peg1_hinge_z")

# Success (robosuite's on_peg + released): nut body within 3 cm of the peg axis in x and y, below
# table top + 5 cm, and the eef site farther than atanh(0.4)/10 ≈ 4.24 cm from the nut body.
ON_PEG_XY_TOL = 0.03
ON_PEG_MAX_Z = TABLE_TOP_Z + 0.05
RELEASE_REACH = 0.6

MAX_PLACEMENT_TRIES = 5000


class Square(CheapRenderMixin, ManipulationEnv):
    """Put the square nut around the square peg (MimicGen Square) with one single-arm robot.

    Args:
        variant: "D0" (nut on the left, peg fixed), "D1" (nut and peg spread out, peg yaw 0) or
            "D2" (larger areas, peg yaw in [0, π/2], wide camera).
        scenario: "default", or "disrupted" (WMPO's position test: the square peg shifted towards
            −y by U(0, 4 cm) from the variant's pose, drawn per episode).
        **kwargs: forwarded to robosuite's ``ManipulationEnv`` (robots, controller_configs, ...).
    """

    def __init__(self, robots: Any = "Panda", variant: str = "D0", scenario: str = "default", **kwargs: Any) -> None:
        check_option("Square", "variant", variant, VARIANTS)
        check_option("Square", "scenario", scenario, SCENARIOS)
        # Must exist before super().__init__, which calls _load_model.
        self.variant = variant
        self.scenario = scenario
        self.table_full_size = TABLE_FULL_SIZE
        self.table_friction = TABLE_FRICTION
        self.table_offset = np.array(TABLE_OFFSET)
        self.use_object_obs = kwargs.pop("use_object_obs", True)
        self.reward_scale = kwargs.pop("reward_scale", 1.0)
        self.reward_shaping = kwargs.pop("reward_shaping", False)
        self.placement_initializer: Any = kwargs.pop("placement_initializer", None)
        super().__init__(robots=robots, **kwargs)

    # ----------------------------------------------------------------------------------- model
    def _load_model(self) -> None:
        super()._load_model()
        arena = table_arena(self, PegsArena)
        self._make_peg1_movable(arena)
        if self.variant == "D0":
            arena.peg2_body.set("pos", array_to_string([PEG2_POS[0], PEG2_POS[1], 0.85]))
        else:
            arena.worldbody.remove(arena.peg2_body)
        if self.variant in WIDE_CAMERA_VARIANTS:
            use_wide_agentview(arena)

        self.nut = SquareNutObject(name="SquareNut")
        (x_range, y_range) = NUT_RANGES[self.variant]
        # Draws from self.rng, which SimEnv.reset re-points to the episode's generator.
        self.placement_initializer = table_sampler(
            self, "SquareNutSampler", self.nut, list(x_range), list(y_range), rotation=None, z_offset=NUT_Z_OFFSET
        )
        self.model = ManipulationTask(
            mujoco_arena=arena,
            mujoco_robots=[robot.robot_model for robot in self.robots],
            mujoco_objects=[self.nut],
        )

    @staticmethod
    def _make_peg1_movable(arena: PegsArena) -> None:
        """Give peg1 x/y slides and a z hinge (its pose lives in qpos) and name its geoms."""
        peg = arena.peg1_body
        peg.set("pos", array_to_string([PEG1_DEFAULT_XY[0], PEG1_DEFAULT_XY[1], 0.85]))
        geoms = list(peg.findall("geom"))
        geoms[0].set("name", "peg1_collision")
        geoms[1].set("name", "peg1_visual")
        common = {
            "pos": "0 0 0",
            "limited": "false",
            "armature": str(PEG_JOINT_ARMATURE),
            "damping": str(PEG_JOINT_DAMPING),
        }
        for index, (name, kind, axis) in enumerate(
            zip(PEG1_JOINTS, ("slide", "slide", "hinge"), ("1 0 0", "0 1 0", "0 0 1"), strict=True)
        ):
            joint = arena.worldbody.makeelement("joint", {"name": name, "type": kind, "axis": axis, **common})
            peg.insert(index, joint)
        # The peg's box extends 7 cm into the table; with joints it is no longer static, so MuJoCo
        # would otherwise resolve that penetration every step.
        arena.contact.append(arena.contact.makeelement("exclude", {"body1": "table", "body2": "peg1"}))

    def _setup_references(self) -> None:
        super()._setup_references()
        model = self.sim.model
        self.nut_body_id = model.body_name2id(self.nut.root_body)
        self.peg1_body_id = model.body_name2id("peg1")
        self.peg1_qpos_addr = [model.get_joint_qpos_addr(name) for name in PEG1_JOINTS]
        self.peg1_qvel_addr = [model.get_joint_qvel_addr(name) for name in PEG1_JOINTS]

    def _setup_observables(self) -> OrderedDict:
        observables = super()._setup_observables()
        if not self.use_object_obs:
            return observables
        sensors = [
            *obs.body_pose_sensors(self, "SquareNut", self.nut_body_id),
            *obs.body_pose_sensors(self, "peg1", self.peg1_body_id, quat=False),
            *obs.gripper_to_sensors(self, "SquareNut_pos", "SquareNut"),
        ]
        return obs.register(self, observables, sensors)

    # ----------------------------------------------------------------------------------- reset
    def _reset_internal(self) -> None:
        super()._reset_internal()
        if self.deterministic_reset:
            return
        peg_xy, peg_yaw = self._sample_peg1()
        clearance = PEG1_RADIUS + self.nut.horizontal_radius
        for _ in range(MAX_PLACEMENT_TRIES):
            placements = self.placement_initializer.sample()
            pos, quat, obj = placements[self.nut.name]
            # Rejection sampling as MimicGen does (it cannot exhaust the tries with these ranges).
            if math.dist(pos[:2], peg_xy) > clearance:
                break
        if self.scenario == "disrupted":
            # Drawn last, so a disrupted scene is its default scene (same seed) with only the peg
            # moved, as WMPO built its disrupted set from copies of the normal initial states.
            for _ in range(MAX_PLACEMENT_TRIES):
                shifted = peg_xy + np.array([0.0, self.rng.uniform(*DISRUPTED_Y_SHIFT)])
                if math.dist(pos[:2], shifted) > clearance:
                    peg_xy = shifted
                    break
        self.set_peg1_pose(peg_xy, peg_yaw)
        self.sim.data.set_joint_qpos(obj.joints[0], np.concatenate([np.array(pos), np.array(quat)]))

    def _sample_peg1(self) -> tuple[np.ndarray, float]:
        """This episode's square-peg (x, y) and yaw, from ``self.rng`` only."""
        ranges = PEG1_RANGES[self.variant]
        if ranges is None:
            xy, yaw = np.array(PEG1_DEFAULT_XY, dtype=float), 0.0
        else:
            (x_lo, x_hi), (y_lo, y_hi), (yaw_lo, yaw_hi) = ranges
            xy = np.array([self.rng.uniform(x_lo, x_hi), self.rng.uniform(y_lo, y_hi)])
            yaw = float(self.rng.uniform(yaw_lo, yaw_hi)) if yaw_hi > yaw_lo else yaw_lo
        return xy, yaw

    def set_peg1_pose(self, xy: np.ndarray, yaw: float) -> None:
        """Put the square peg at world ``xy`` with ``yaw`` (writes its joint qpos, zeroes its qvel)."""
        values = (xy[0] - PEG1_DEFAULT_XY[0], xy[1] - PEG1_DEFAULT_XY[1], yaw)
        for qpos_addr, qvel_addr, value in zip(self.peg1_qpos_addr, self.peg1_qvel_addr, values, strict=True):
            self.sim.data.qpos[qpos_addr] = value
            self.sim.data.qvel[qvel_addr] = 0.0

    # --------------------------------------------------------------------------------- success
    def object_body_ids(self) -> dict[str, int]:
        """Task object name → MuJoCo body id (the peg's body pose includes its joints)."""
        return {"nut": int(self.nut_body_id), "peg": int(self.peg1_body_id)}

    def nut_grasped(self) -> bool:
        """Both finger pads touch the nut (robosuite's grasp test)."""
        return bool(self._check_grasp(gripper=self.robots[0].gripper, object_geoms=self.nut))

    def subtask_signals(self) -> dict[str, bool]:
        """MimicGen's Square subtask end signal: the nut is grasped."""
        return {"grasp": self.nut_grasped()}

    def nut_on_peg(self) -> bool:
        """The nut body is around the square peg and low (robosuite's ``on_peg`` test)."""
        nut = self.sim.data.body_xpos[self.nut_body_id]
        peg = self.sim.data.body_xpos[self.peg1_body_id]
        return bool(
            abs(nut[0] - peg[0]) < ON_PEG_XY_TOL and abs(nut[1] - peg[1]) < ON_PEG_XY_TOL and nut[2] < ON_PEG_MAX_Z
        )

    def _check_success(self) -> bool:
        if not self.nut_on_peg():
            return False
        nut = self.sim.data.body_xpos[self.nut_body_id]
        robot = self.robots[0]
        dist = min(float(np.linalg.norm(self.sim.data.site_xpos[robot.eef_site_id[arm]] - nut)) for arm in robot.arms)
        # robosuite's reaching-reward form of "released": 1 - tanh(10 d) < 0.6  ⇔  d > 4.24 cm.
        return bool(1.0 - math.tanh(10.0 * dist) < RELEASE_REACH)

    def reward(self, action: Any = None) -> float:
        """Sparse reward: 1.0 while the nut is on the square peg and released, else 0.0."""
        return 1.0 if self._check_success() else 0.0
