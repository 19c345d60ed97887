"""MimicGen's StackThree task rebuilt on robosuite 1.5.2.

Three cubes on a table: red cube A (half size 2 cm), green cube B (2.5 cm) and blue cube C (2 cm).
The task is solved when A rests on B and C rests on A, with neither held by the gripper. The
geometry, materials, placement ranges and success test follow MimicGen's definition (see
``/work/shared/reference/mimicgen-tasks.md`` §3) so that data generated here is comparable with the
paper's, but the code is our own and targets robosuite 1.5's API (``ManipulationEnv`` hooks,
composite controllers, sampler ``rng``).

This module imports robosuite at import time; only :mod:`wmpo_cli.envs.sim` imports it, so the CLI's
``--help`` never pays for it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from robosuite.environments.manipulation.stack import Stack
from robosuite.models.objects import BoxObject
from robosuite.models.tasks import ManipulationTask
from robosuite.utils.observables import sensor

from wmpo_cli.envs import observables as obs
from wmpo_cli.envs.render_utils import CheapRenderMixin
from wmpo_cli.envs.scene import (
    check_option,
    grey_table_top,
    table_arena,
    table_sampler,
    use_wide_agentview,
    wood_material,
)

# Placement half-range (metres, around the table centre) per variant: D1 doubles D0's square.
PLACEMENT_RANGE: dict[str, float] = {"D0": 0.10, "D1": 0.20}

# D1 spreads the cubes over a larger area, so its agentview camera takes MimicGen's wide pose.
WIDE_CAMERA_VARIANTS: tuple[str, ...] = ("D1",)

CUBE_HALF_SIZES: dict[str, float] = {"cubeA": 0.02, "cubeB": 0.025, "cubeC": 0.02}
CUBE_DENSITY = 1000.0
CUBE_FRICTION = (1.0, 5e-3, 1e-4)

# Success heights (above the 0.8 m table top) follow MimicGen: A's centre must be clearly above a
# table-resting cube (0.84 > 0.8 + 0.02), C's above a cube resting on B-height (0.88).
TABLE_TOP_Z = 0.8
A_ON_B_MIN_Z = TABLE_TOP_Z + 0.04
C_ON_A_MIN_Z = TABLE_TOP_Z + 0.08


class StackThree(CheapRenderMixin, Stack):
    """Stack A on B, then C on A (MimicGen StackThree) for one single-arm robot.

    Derived from robosuite's ``Stack`` to reuse its cubeA/cubeB observables and placement-driven
    reset; the model, references, extra observables, reward and success test are our own.

    Args:
        variant: "D0" (cubes within ±10 cm, standard camera) or "D1" (±20 cm, wide camera).
        scenario: "default", or "disrupted" (WMPO's background test: a grey table top).
        **kwargs: forwarded to robosuite's ``Stack`` (robots, controller_configs, ...).
    """

    def __init__(self, robots: Any = "Panda", variant: str = "D0", scenario: str = "default", **kwargs: Any) -> None:
        check_option("StackThree", "variant", variant, PLACEMENT_RANGE)
        check_option("StackThree", "scenario", scenario, ("default", "disrupted"))
        # Must exist before super().__init__, which calls _load_model.
        self.variant = variant
        self.scenario = scenario
        kwargs.setdefault("placement_initializer", None)
        super().__init__(robots=robots, **kwargs)

    # ----------------------------------------------------------------------------------- model
    def _load_model(self) -> None:
        # Skip Stack._load_model (it builds a two-cube scene); keep ManipulationEnv's robot loading.
        super(Stack, self)._load_model()

        arena = table_arena(self)
        if self.variant in WIDE_CAMERA_VARIANTS:
            use_wide_agentview(arena)
        if self.scenario == "disrupted":
            grey_table_top(arena)

        materials = {
            "cubeA": wood_material("WoodRed", "redwood"),
            "cubeB": wood_material("WoodGreen", "greenwood"),
            # MimicGen's cubeC carries a red rgba but a blue material, and the material is what renders.
            "cubeC": wood_material("WoodBlue", "bluewood"),
        }
        rgbas = {"cubeA": (1, 0, 0, 1), "cubeB": (0, 1, 0, 1), "cubeC": (0, 0, 1, 1)}
        cubes = []
        for name, half in CUBE_HALF_SIZES.items():
            cubes.append(
                BoxObject(
                    name=name,
                    size=[half, half, half],  # fixed size: the model is identical in every process
                    rgba=list(rgbas[name]),
                    material=materials[name],
                    density=CUBE_DENSITY,
                    friction=CUBE_FRICTION,
                )
            )
        self.cubeA, self.cubeB, self.cubeC = cubes

        half_range = PLACEMENT_RANGE[self.variant]
        # One sampler for all three cubes so that ensure_valid_placement keeps them apart. It draws
        # from self.rng, which SimEnv.reset re-seeds, so placements depend only on the seed.
        self.placement_initializer = table_sampler(
            self,
            "ObjectSampler",
            cubes,
            [-half_range, half_range],
            [-half_range, half_range],
            rotation=None,
            z_offset=0.01,
        )

        self.model = ManipulationTask(
            mujoco_arena=arena,
            mujoco_robots=[robot.robot_model for robot in self.robots],
            mujoco_objects=cubes,
        )

    def _setup_references(self) -> None:
        super()._setup_references()
        self.cubeC_body_id = self.sim.model.body_name2id(self.cubeC.root_body)

    def _setup_observables(self) -> OrderedDict:
        observables = super()._setup_observables()
        if not self.use_object_obs:
            return observables

        @sensor(modality=obs.MODALITY)
        def cubeA_to_cubeC(obs_cache: dict) -> np.ndarray:
            if "cubeA_pos" in obs_cache and "cubeC_pos" in obs_cache:
                return obs_cache["cubeC_pos"] - obs_cache["cubeA_pos"]
            return np.zeros(3)

        @sensor(modality=obs.MODALITY)
        def cubeB_to_cubeC(obs_cache: dict) -> np.ndarray:
            if "cubeB_pos" in obs_cache and "cubeC_pos" in obs_cache:
                return obs_cache["cubeC_pos"] - obs_cache["cubeB_pos"]
            return np.zeros(3)

        sensors = [
            *obs.body_pose_sensors(self, "cubeC", self.cubeC_body_id),
            cubeA_to_cubeC,
            cubeB_to_cubeC,
            *obs.gripper_to_sensors(self, "cubeC_pos", "cubeC"),
        ]
        return obs.register(self, observables, sensors)

    # --------------------------------------------------------------------------------- success
    def _cube_on(self, top: BoxObject, bottom: BoxObject, top_body_id: int, min_z: float) -> bool:
        """``top`` rests on ``bottom``: released, high enough to be off the table, and touching it."""
        if self._check_grasp(gripper=self.robots[0].gripper, object_geoms=top):
            return False
        if self.sim.data.body_xpos[top_body_id][2] <= min_z:
            return False
        return bool(self.check_contact(top, bottom))

    def stack_flags(self) -> tuple[bool, bool]:
        """(A on B, C on A) — MimicGen's two subtask conditions."""
        a_on_b = self._cube_on(self.cubeA, self.cubeB, self.cubeA_body_id, A_ON_B_MIN_Z)
        c_on_a = self._cube_on(self.cubeC, self.cubeA, self.cubeC_body_id, C_ON_A_MIN_Z)
        return a_on_b, c_on_a

    def object_body_ids(self) -> dict[str, int]:
        """Task object name → MuJoCo body id (privileged poses for experts and data generation)."""
        return {name: self.sim.model.body_name2id(getattr(self, name).root_body) for name in CUBE_HALF_SIZES}

    def subtask_signals(self) -> dict[str, bool]:
        """MimicGen's subtask end signals: A grasped, A on B, C grasped."""
        gripper = self.robots[0].gripper
        a_on_b, _ = self.stack_flags()
        return {
            "grasp_1": bool(self._check_grasp(gripper=gripper, object_geoms=self.cubeA)),
            "stack_1": a_on_b,
            "grasp_2": bool(self._check_grasp(gripper=gripper, object_geoms=self.cubeC)),
        }

    def _check_success(self) -> bool:
        a_on_b, c_on_a = self.stack_flags()
        return a_on_b and c_on_a

    def reward(self, action: Any = None) -> float:
        """Sparse reward: 1.0 once the three-cube tower stands, else 0.0."""
        return 1.0 if self._check_success() else 0.0
