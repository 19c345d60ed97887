"""MimicGen's ThreePieceAssembly task rebuilt on robosuite 1.5.2.

Three red wooden pieces lie on a table: a heavy square ``base`` with a square through-hole, a
``piece_1`` (a square plate carrying a ridge) and a ``piece_2`` (a plate on two legs, with a knob on
top). The task is solved when piece_1 sits in the base's hole and piece_2 straddles piece_1's ridge
(its slot over the ridge, its legs on the base), with neither piece held. Geometry, densities,
placement ranges and the success test follow MimicGen's definition (see
``/work/shared/reference/mimicgen-tasks.md`` §4); the code is our own and targets robosuite 1.5's API.

Geometry in the assembled state (table top at 0.8, u = unit-box half size):

* base (u = 0.019): 19 × 19 × 3.8 cm, centre z 0.819, top 0.838, hole 11.4 cm square;
* piece_1 (u = 0.017): its 10.2 cm plate drops through the hole onto the table (6 mm clearance per
  side), centre z 0.851, ridge top 0.902;
* piece_2 (u = 0.02): its 8 cm legs stand on the base around the hole (the hole is 11.4 cm, the legs'
  outer faces 12 cm apart), centre z 0.838 + 0.08 = 0.918, which is base_z + 0.08 + 0.019: inside
  MimicGen's ±2 cm height window, by 1 mm before contact penetration (which only helps).

This module imports robosuite at import time; only :mod:`wmpo_cli.envs.sim` imports it, so the CLI's
``--help`` never pays for it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
from robosuite.models.objects import CompositeObject
from robosuite.models.tasks import ManipulationTask
from robosuite.utils.mjcf_utils import CustomMaterial
from robosuite.utils.placement_samplers import SequentialCompositeSampler

from wmpo_cli.envs import observables as obs
from wmpo_cli.envs.render_utils import CheapRenderMixin
from wmpo_cli.envs.scene import check_option, table_arena, table_sampler, use_wide_agentview, wood_material

VARIANTS: tuple[str, ...] = ("D0", "D1", "D2")
SCENARIOS: tuple[str, ...] = ("default", "disrupted")

TABLE_TOP_Z = 0.8

# Box patterns, indexed [z][x][y]: a truthy cell puts a unit box (half size u) at (2u·x, 2u·y, 2u·z)
# from the pattern's corner. The body frame is the centre of the pattern's bounding box.
_FULL3 = ((1, 1, 1), (1, 1, 1), (1, 1, 1))
_RIDGE3 = ((0, 0, 0), (1, 1, 1), (0, 0, 0))  # middle x-row only: a ridge along y
_LEGS3 = ((1, 1, 1), (0, 0, 0), (1, 1, 1))  # outer x-rows: two legs along y, a slot between
_KNOB3 = ((0, 0, 0), (0, 1, 0), (0, 0, 0))
_RING5 = tuple(tuple(0 if 1 <= i <= 3 and 1 <= j <= 3 else 1 for j in range(5)) for i in range(5))

PIECE_1_PATTERN = (_FULL3, _RIDGE3, _RIDGE3)
PIECE_2_PATTERN = (_LEGS3, _LEGS3, _FULL3, _KNOB3)
BASE_PATTERN = (_RING5,)

PIECE_1_UNIT = 0.017
PIECE_2_UNIT = 0.02
BASE_UNIT = 0.019
PIECE_DENSITY = 100.0
BASE_DENSITY = 10000.0  # ≈ 8.8 kg: the base does not slide when a piece is pushed into it

# Derived heights used by the success test and the expert.
PIECE_2_LEG_HEIGHT = 4 * PIECE_2_UNIT  # 0.08: piece_2's centre above its legs' bottom
SUCCESS_XY_TOL = 0.02
SUCCESS_Z_TOL = 0.02

# (x range, y range, yaw or yaw range) of the base and of the two pieces per variant. Offsets are
# from the table centre; a float yaw is fixed, a pair is uniform.
_HALF_PI = math.pi / 2.0
PLACEMENT: dict[str, dict[str, tuple[tuple[float, float], tuple[float, float], float | tuple[float, float]]]] = {
    "D0": {
        "base": ((0.0, 0.0), (0.0, 0.0), 0.0),
        "pieces": ((-0.22, 0.22), (-0.22, 0.22), 1.5708),
    },
    "D1": {
        "base": ((-0.22, 0.22), (-0.22, 0.22), 0.0),
        "pieces": ((-0.22, 0.22), (-0.22, 0.22), 1.5708),
    },
    "D2": {
        "base": ((-0.22, 0.22), (-0.22, 0.22), (-math.pi / 4.0, math.pi / 4.0)),
        "pieces": ((-0.22, 0.22), (-0.22, 0.22), (1.5708 - _HALF_PI, 1.5708 + _HALF_PI)),
    },
}

# WMPO's "texture" disruption: the base recoloured dark (rgba, specular, shininess).
DISRUPTED_BASE_RGBA = (0.22, 0.18, 0.16, 1.0)
DISRUPTED_BASE_SPECULAR = 0.1
DISRUPTED_BASE_SHININESS = 0.05


def merge_box_pattern(
    pattern: Sequence[Sequence[Sequence[int]]],
) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """Cover a [z][x][y] occupancy pattern with few axis-aligned cuboids (greedy, exact).

    Each filled cell is covered exactly once; a cuboid grows from its first uncovered cell along y,
    then x, then z while every cell it would add is filled and uncovered. Returns (start, extent)
    cell triples in (x, y, z) order. Fewer geoms make contact detection cheaper without changing
    the shape (the union of boxes is the same solid).
    """
    nz, nx, ny = len(pattern), len(pattern[0]), len(pattern[0][0])
    filled = np.array([[[bool(pattern[k][i][j]) for j in range(ny)] for i in range(nx)] for k in range(nz)])
    covered = np.zeros_like(filled)
    boxes = []

    def free(k0: int, k1: int, i0: int, i1: int, j0: int, j1: int) -> bool:
        block = (slice(k0, k1), slice(i0, i1), slice(j0, j1))
        return bool(filled[block].all() and not covered[block].any())

    for k in range(nz):
        for i in range(nx):
            for j in range(ny):
                if not filled[k, i, j] or covered[k, i, j]:
                    continue
                j1 = j + 1
                while j1 < ny and free(k, k + 1, i, i + 1, j1, j1 + 1):
                    j1 += 1
                i1 = i + 1
                while i1 < nx and free(k, k + 1, i1, i1 + 1, j, j1):
                    i1 += 1
                k1 = k + 1
                while k1 < nz and free(k1, k1 + 1, i, i1, j, j1):
                    k1 += 1
                covered[k:k1, i:i1, j:j1] = True
                boxes.append(((i, j, k), (i1 - i, j1 - j, k1 - k)))
    return boxes


class BoxPatternObject(CompositeObject):
    """A free-jointed rigid body made of unit boxes laid out by a [z][x][y] pattern.

    Adjacent boxes are merged (see :func:`merge_box_pattern`). The body frame is the centre of the
    pattern's bounding box, so ``bottom_offset``/``top_offset``/``horizontal_radius`` (used by the
    placement samplers) are those of the bounding box.
    """

    def __init__(
        self,
        name: str,
        pattern: Sequence[Sequence[Sequence[int]]],
        unit: float,
        density: float,
        material: CustomMaterial,
        friction: tuple[float, float, float] = (1.0, 5e-3, 1e-4),
        rgba: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 1.0),
    ) -> None:
        self.pattern = pattern
        self.unit = float(unit)
        self.material = material
        boxes = merge_box_pattern(pattern)
        nz, nx, ny = len(pattern), len(pattern[0]), len(pattern[0][0])
        super().__init__(
            name=name,
            total_size=[unit * nx, unit * ny, unit * nz],
            geom_types=["box"] * len(boxes),
            geom_sizes=[[unit * e for e in extent] for _, extent in boxes],
            # Locations of each box's min corner relative to the bounding box's min corner.
            geom_locations=[[2.0 * unit * s for s in start] for start, _ in boxes],
            geom_names=[f"g{n}" for n in range(len(boxes))],
            geom_materials=[material.mat_attrib["name"]] * len(boxes),
            geom_frictions=[list(friction)] * len(boxes),
            # A geom rgba other than MuJoCo's default overrides its material's rgba when rendering,
            # so the tint must be given here too, not only in the material.
            rgba=list(rgba),
            density=density,
            locations_relative_to_center=False,
        )
        self.append_material(material)


def _base_material(scenario: str) -> CustomMaterial:
    """Red wood, or for the disrupted scenario the same wood tinted dark and made matte.

    MuJoCo multiplies a material's rgba into its texture, so the dark tint over the red wood renders
    clearly darker (nearly brown-black) while the geoms, and hence the physics, stay unchanged.
    """
    if scenario != "disrupted":
        return wood_material("WoodRed", "base_redwood")
    return CustomMaterial(
        texture="WoodRed",
        tex_name="base_redwood",
        mat_name="base_redwood_mat",
        tex_attrib={"type": "cube"},
        mat_attrib={
            "texrepeat": "1 1",
            "rgba": " ".join(str(v) for v in DISRUPTED_BASE_RGBA),
            "specular": str(DISRUPTED_BASE_SPECULAR),
            "shininess": str(DISRUPTED_BASE_SHININESS),
        },
    )


class ThreePieceAssembly(CheapRenderMixin, ManipulationEnv):
    """Put piece_1 into the base's hole, then piece_2 over piece_1's ridge (MimicGen ThreePieceAssembly).

    Args:
        variant: "D0" (base fixed at the table centre), "D1" (base anywhere in ±22 cm) or "D2" (base
            also yawed ±45°, pieces yawed 90° ± 90°). All variants use the wide agentview camera.
        scenario: "default", or "disrupted" (WMPO's texture test: a dark base; physics unchanged).
        **kwargs: forwarded to robosuite's ``ManipulationEnv`` (robots, controller_configs, ...);
            ``reward_shaping``, ``reward_scale``, ``use_object_obs`` and ``placement_initializer``
            are accepted as in robosuite's stock tasks.
    """

    def __init__(self, robots: Any = "Panda", variant: str = "D0", scenario: str = "default", **kwargs: Any) -> None:
        check_option("ThreePieceAssembly", "variant", variant, VARIANTS)
        check_option("ThreePieceAssembly", "scenario", scenario, SCENARIOS)
        # Must exist before super().__init__, which calls _load_model.
        self.variant = variant
        self.scenario = scenario
        self.table_full_size = (0.8, 0.8, 0.05)
        self.table_friction = (1.0, 5e-3, 1e-4)
        self.table_offset = np.array((0.0, 0.0, TABLE_TOP_Z))
        self.reward_scale = float(kwargs.pop("reward_scale", 1.0))
        self.reward_shaping = bool(kwargs.pop("reward_shaping", False))  # sparse only
        self.use_object_obs = bool(kwargs.pop("use_object_obs", True))
        # The placement sampler must draw from self.rng, which exists only once robosuite's
        # constructor runs, so it is always built in _load_model.
        kwargs.pop("placement_initializer", None)
        self.placement_initializer: SequentialCompositeSampler | None = None
        super().__init__(robots=robots, **kwargs)

    # ----------------------------------------------------------------------------------- model
    def _load_model(self) -> None:
        super()._load_model()

        arena = table_arena(self)
        # The wide view keeps the whole ±22 cm placement area in frame (MimicGen swaps it in for
        # every variant of this task).
        use_wide_agentview(arena)

        self.piece_1 = BoxPatternObject(
            "piece_1", PIECE_1_PATTERN, PIECE_1_UNIT, PIECE_DENSITY, wood_material("WoodRed", "piece_1_redwood")
        )
        self.piece_2 = BoxPatternObject(
            "piece_2", PIECE_2_PATTERN, PIECE_2_UNIT, PIECE_DENSITY, wood_material("WoodRed", "piece_2_redwood")
        )
        self.base = BoxPatternObject(
            "base",
            BASE_PATTERN,
            BASE_UNIT,
            BASE_DENSITY,
            _base_material(self.scenario),
            rgba=DISRUPTED_BASE_RGBA if self.scenario == "disrupted" else (1.0, 0.0, 0.0, 1.0),
        )
        objects = [self.base, self.piece_1, self.piece_2]

        # One sampler per object, run in sequence so that each later object avoids the earlier
        # ones (ensure_valid_placement checks against everything placed so far). All draw from
        # self.rng, which SimEnv.reset re-seeds, so placements depend only on the seed.
        layout = PLACEMENT[self.variant]
        self.placement_initializer = SequentialCompositeSampler(name="ObjectSampler")
        for obj in objects:
            x_range, y_range, yaw = layout["base" if obj is self.base else "pieces"]
            self.placement_initializer.append_sampler(
                table_sampler(
                    self, f"{obj.name}_sampler", obj, list(x_range), list(y_range), rotation=yaw, z_offset=0.001
                )
            )

        self.model = ManipulationTask(
            mujoco_arena=arena,
            mujoco_robots=[robot.robot_model for robot in self.robots],
            mujoco_objects=objects,
        )

    def _setup_references(self) -> None:
        super()._setup_references()
        self._body_ids = {
            obj.name: int(self.sim.model.body_name2id(obj.root_body)) for obj in (self.piece_1, self.piece_2, self.base)
        }

    def _setup_observables(self) -> OrderedDict:
        observables = super()._setup_observables()
        if not self.use_object_obs:
            return observables
        sensors = []
        for name in ("piece_1", "piece_2", "base"):
            sensors += obs.body_pose_sensors(self, name, self._body_ids[name])
            sensors += obs.gripper_to_sensors(self, f"{name}_pos", name)
        return obs.register(self, observables, sensors)

    def _reset_internal(self) -> None:
        super()._reset_internal()
        if self.deterministic_reset:
            return
        # Every per-episode random quantity is a free joint's qpos (the model itself never changes).
        for obj_pos, obj_quat, obj in self.placement_initializer.sample().values():
            self.sim.data.set_joint_qpos(obj.joints[0], np.concatenate([np.array(obj_pos), np.array(obj_quat)]))

    # --------------------------------------------------------------------------------- success
    def _grasped(self, obj: CompositeObject) -> bool:
        return bool(self._check_grasp(gripper=self.robots[0].gripper, object_geoms=obj))

    def _xy_dist(self, a: str, b: str) -> float:
        pa, pb = self.sim.data.body_xpos[self._body_ids[a]], self.sim.data.body_xpos[self._body_ids[b]]
        return float(np.linalg.norm(pa[:2] - pb[:2]))

    def first_piece_assembled(self) -> bool:
        """piece_1 released within 2 cm (horizontally) of the base's centre, i.e. in its hole."""
        return self._xy_dist("piece_1", "base") < SUCCESS_XY_TOL and not self._grasped(self.piece_1)

    def second_piece_assembled(self) -> bool:
        """piece_2 released over piece_1 at the height it has when its legs stand on the base."""
        piece_2_z = float(self.sim.data.body_xpos[self._body_ids["piece_2"]][2])
        base_z = float(self.sim.data.body_xpos[self._body_ids["base"]][2])
        return (
            self._xy_dist("piece_2", "piece_1") < SUCCESS_XY_TOL
            and abs(piece_2_z - (base_z + PIECE_2_LEG_HEIGHT)) < SUCCESS_Z_TOL
            and not self._grasped(self.piece_2)
        )

    def object_body_ids(self) -> dict[str, int]:
        """Task object name → MuJoCo body id (privileged poses for experts and data generation)."""
        return dict(self._body_ids)

    def subtask_signals(self) -> dict[str, bool]:
        """MimicGen's subtask end signals: piece_1 grasped, piece_1 in the base, piece_2 grasped."""
        return {
            "grasp_1": self._grasped(self.piece_1),
            "insert_1": self.first_piece_assembled(),
            "grasp_2": self._grasped(self.piece_2),
        }

    def _check_success(self) -> bool:
        return self.first_piece_assembled() and self.second_piece_assembled()

    def reward(self, action: Any = None) -> float:
        """Sparse reward: ``reward_scale`` once both pieces are assembled, else 0.0."""
        return self.reward_scale if self._check_success() else 0.0
