"""robosuite's Lift with a model that is identical in every process.

Stock ``Lift`` draws its cube half size from U(0.020, 0.022) with ``self.rng`` while building the
model; an unseeded env therefore compiles a different model in each worker process, so states
recorded in one process would not replay exactly in another. Here the cube size is fixed (the
middle of the stock range) and everything else is as in robosuite.
"""

from __future__ import annotations

from typing import Any

from robosuite.environments.manipulation.lift import Lift
from robosuite.models.objects import BoxObject
from robosuite.models.tasks import ManipulationTask

from wmpo_cli.envs.render_utils import CheapRenderMixin
from wmpo_cli.envs.scene import table_arena, table_sampler, wood_material

LIFT_CUBE_HALF_SIZE = 0.021
LIFT_PLACEMENT_RANGE = 0.03  # stock Lift: cube centre within ±3 cm of the table centre


class FixedCubeLift(CheapRenderMixin, Lift):
    """Lift the red cube above the table (success: cube centre > table top + 4 cm, as robosuite)."""

    def __init__(self, robots: Any = "Panda", **kwargs: Any) -> None:
        kwargs.setdefault("placement_initializer", None)
        super().__init__(robots=robots, **kwargs)

    def _load_model(self) -> None:
        # Skip Lift._load_model (random cube size) but keep ManipulationEnv's robot loading.
        super(Lift, self)._load_model()

        arena = table_arena(self)

        redwood = wood_material("WoodRed", "redwood")
        half = LIFT_CUBE_HALF_SIZE
        self.cube = BoxObject(name="cube", size=[half, half, half], rgba=[1, 0, 0, 1], material=redwood)

        self.placement_initializer = table_sampler(
            self,
            "ObjectSampler",
            self.cube,
            [-LIFT_PLACEMENT_RANGE, LIFT_PLACEMENT_RANGE],
            [-LIFT_PLACEMENT_RANGE, LIFT_PLACEMENT_RANGE],
            rotation=None,
            z_offset=0.01,
        )

        self.model = ManipulationTask(
            mujoco_arena=arena,
            mujoco_robots=[robot.robot_model for robot in self.robots],
            mujoco_objects=self.cube,
        )

    def object_body_ids(self) -> dict[str, int]:
        """Task object name → MuJoCo body id (privileged poses for experts and data generation)."""
        return {"cube": self.sim.model.body_name2id(self.cube.root_body)}

    def subtask_signals(self) -> dict[str, bool]:
        """MimicGen-style subtask end signals: the cube is grasped."""
        return {"grasp": bool(self._check_grasp(gripper=self.robots[0].gripper, object_geoms=self.cube))}

    def reward(self, action: Any = None) -> float:
        """Sparse reward: 1.0 while the cube is lifted, else 0.0 (ignores reward_shaping)."""
        return 1.0 if self._check_success() else 0.0
