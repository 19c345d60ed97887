"""MimicGen's Coffee task rebuilt on robosuite 1.5.2 from MuJoCo primitives.

A coffee machine (free joint) stands on the table with its lid hinged open at 120°; a coffee pod
lies next to it. The task is solved when the pod sits in the machine's pod holder and the lid is
closed over it. Geometry, placement ranges and the success test follow MimicGen's definition (see
``/work/shared/reference/mimicgen-tasks.md`` §5), but MimicGen's meshes are replaced by boxes and
cylinders (no mesh files): the body, ridge, base plate, bracket and lid are boxes, the pod holder is
a ring of wall boxes around a floor cylinder, and the pod is a single cylinder of the pod's rim
radius. The code is our own and targets robosuite 1.5's API.

Machine frame (origin = bounding-box centre, +y towards the holder side, z up; all in metres):
body spans y ∈ [-0.1505, 0.0505], z ∈ [-0.1105, 0.0895] plus a ridge up to 0.1105; the holder cup
is centred at (0, 0.1061, 0.0635) (inner radius 0.02497, rim 0.028 above its centre, floor top
0.016 below); the closed lid's centre is (0, 0.1045, 0.106) and its hinge runs along x through
(0, 0.0605, 0.106).

This module imports robosuite at import time; only :mod:`wmpo_cli.envs.sim` imports it.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import OrderedDict
from typing import Any

import numpy as np
from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
from robosuite.models.objects import CylinderObject, MujocoGeneratedObject
from robosuite.models.tasks import ManipulationTask
from robosuite.utils.mjcf_utils import add_prefix, array_to_string
from robosuite.utils.observables import sensor
from robosuite.utils.placement_samplers import SequentialCompositeSampler

from wmpo_cli.envs import observables as obs
from wmpo_cli.envs.render_utils import CheapRenderMixin
from wmpo_cli.envs.scene import check_option, table_arena, table_sampler

VARIANTS: tuple[str, ...] = ("D0", "D1", "D2")
SCENARIOS: tuple[str, ...] = ("default", "disrupted")

TABLE_TOP_Z = 0.8

# --------------------------------------------------------------------------- geometry
# Half extents of the whole machine; its origin is the bounding-box centre, so the origin stands
# MACHINE_HALF[2] above the table.
MACHINE_HALF = (0.0865, 0.1505, 0.1105)

BODY_CENTER = (0.0, -0.05, -0.01)  # box part of the body: z from -0.1105 to 0.0895
BODY_HALF = (0.0865, 0.1005, 0.0995)
RIDGE_CENTER = (0.0, -0.058, 0.1)  # rounded ridge on top of the body, up to z 0.1105
RIDGE_HALF = (0.03, 0.0915, 0.0105)
BASE_CENTER = (0.0, 0.1005, -0.1055)
BASE_HALF = (0.042, 0.05, 0.005)
BRACKET_CENTER = (0.0, 0.06355, 0.0865)
BRACKET_HALF = (0.01, 0.01305, 0.005)
MUG_CENTER = (0.0, 0.1061, -0.0755)
MUG_RADIUS, MUG_HALF_HEIGHT = 0.03, 0.025

HOLDER_CENTER = (0.0, 0.1061, 0.0635)
HOLDER_HALF_HEIGHT = 0.028
HOLDER_OUTER_RADIUS = 0.0295
HOLDER_WALL_HALF_THICKNESS = 0.002247
HOLDER_WALL_RADIUS = 0.02722  # centre line of the wall boxes; inner faces at 0.02497
HOLDER_FLOOR_HALF_HEIGHT = 0.005
HOLDER_FLOOR_Z = -0.021  # floor centre below the cup centre; its top is 0.016 below
# 32 wall boxes keep the inner surface closed (inscribed radius 0.02497) and are ≈2.7× faster to
# simulate than MimicGen's 64 with the same seating behaviour (reference §5 measurements).
HOLDER_WALLS = 32

LID_CENTER = (0.0, 0.1045, 0.106)  # closed
LID_HALF = (0.0295, 0.044, 0.0095)
LID_HINGE_LOCAL = (0.0, -0.044, 0.0)  # back edge of the lid, on its mid-plane
LID_OPEN_ANGLE = 2.0 * math.pi / 3.0
LID_DAMPING = 0.005

POD_RADIUS = 0.0243
POD_HALF_HEIGHT = 0.0231
POD_DENSITY = 100.0
# MuJoCo takes the larger friction of two touching geoms. A low pod friction leaves its contacts
# with the table (1.0) and the finger pads (2.0) unchanged but lets it slide down the holder's
# walls (also low): with 0.7 mm of radial clearance a pod as grippy as MimicGen's jams half-way
# (MimicGen's mesh pod tapers towards its bottom, which our plain cylinder does not).
POD_FRICTION = (0.1, 5e-3, 1e-4)
HOLDER_FRICTION = (0.1, 5e-3, 1e-4)

MACHINE_DENSITY = 1000.0
MACHINE_FRICTION = (0.95, 5e-3, 1e-4)

# Colours: MimicGen's dark body and base, silver lid / bracket / mug, red holder cup.
DARK_RGBA = (0.13, 0.13, 0.13, 1.0)
CREAM_RGBA = (0.85, 0.80, 0.70, 1.0)  # "disrupted" scenario: a light machine body
SILVER_RGBA = (0.839, 0.839, 0.839, 1.0)
RED_RGBA = (0.8, 0.1, 0.1, 1.0)
POD_RGBA = (0.55, 0.35, 0.2, 1.0)

# ---------------------------------------------------------------------------- success
LID_CLOSED_MAX_ANGLE = math.radians(15.0)
POD_XY_TOLERANCE = HOLDER_OUTER_RADIUS - POD_RADIUS  # 5.2 mm
POD_Z_HALF = 0.023103  # MimicGen's pod half height used by its success test
LID_HALF_THICKNESS = 0.0095

# ---------------------------------------------------------------------------- placement
# Per variant: machine (x range, y range, yaw or yaw range) and pod (x range, y range); pod yaw 0.
PLACEMENTS: dict[str, dict[str, Any]] = {
    "D0": {
        "machine": ((0.0, 0.0), (-0.1, -0.1), -math.pi / 6.0),
        "pod": ((-0.13, -0.07), (0.17, 0.23)),
    },
    "D1": {
        "machine": ((0.05, 0.15), (-0.2, -0.1), (-math.pi / 6.0, math.pi / 3.0)),
        "pod": ((-0.2, 0.05), (0.17, 0.3)),
    },
    "D2": {
        "machine": ((-0.05, 0.05), (0.1, 0.2), (2.0 * math.pi / 3.0, 7.0 * math.pi / 6.0)),
        "pod": ((-0.2, 0.05), (-0.3, -0.17)),
    },
}


def _s(values: Any) -> str:
    return array_to_string(np.asarray(values, dtype=np.float64))


class CoffeeMachineObject(MujocoGeneratedObject):
    """The coffee machine as one free body with two child bodies: the pod holder and the hinged lid.

    Everything welded to the machine (body, ridge, base plate, bracket, mug) is a geom of the root
    body, and the holder and lid are its children. MuJoCo never collides a body with its parent, so
    the parts that touch (bracket/holder, body/lid hinge edge) generate no internal contacts; the
    holder and lid are 5 mm apart when closed.

    Args:
        name: object name (prefix of every element).
        body_rgba: colour of the body, ridge and base plate.
        walls: number of wall boxes of the holder cup.
    """

    def __init__(self, name: str, body_rgba: tuple[float, ...] = DARK_RGBA, walls: int = HOLDER_WALLS) -> None:
        super().__init__(obj_type="all", duplicate_collision_geoms=True)
        self._name = name
        self.body_rgba = tuple(body_rgba)
        self.walls = int(walls)
        self._materials = {
            "body_mat": (self.body_rgba, 0.3, 0.3),
            "silver_mat": (SILVER_RGBA, 0.8, 0.6),
            "red_mat": (RED_RGBA, 0.4, 0.3),
        }
        for mat_name, (rgba, specular, shininess) in self._materials.items():
            self.asset.append(
                ET.Element(
                    "material",
                    attrib={"name": mat_name, "rgba": _s(rgba), "specular": str(specular), "shininess": str(shininess)},
                )
            )
        self._obj = self._get_object_subtree()
        self._get_object_properties()

    # -- XML ---------------------------------------------------------------------------------
    def _geom(
        self,
        body: ET.Element,
        name: str,
        gtype: str,
        size: Any,
        pos: Any,
        material: str,
        quat: Any = None,
        friction: tuple[float, float, float] = MACHINE_FRICTION,
    ) -> None:
        """A collision geom (group 0, hidden) and its visual twin (group 1, no contacts)."""
        common = {"type": gtype, "size": _s(size), "pos": _s(pos)}
        if quat is not None:
            common["quat"] = _s(quat)
        collision = {
            **common,
            "name": name,
            "group": "0",
            "density": str(MACHINE_DENSITY),
            "friction": _s(friction),
            "condim": "3",
            "rgba": "0.5 0 0 1",
        }
        visual = {
            **common,
            "name": f"{name}_vis",
            "group": "1",
            "contype": "0",
            "conaffinity": "0",
            "density": "0",
            "material": material,
        }
        body.append(ET.Element("geom", attrib=collision))
        body.append(ET.Element("geom", attrib=visual))

    def _get_object_subtree(self) -> ET.Element:
        root = ET.Element("body", attrib={"name": "main"})
        root.append(ET.Element("joint", attrib={"name": "joint0", "type": "free"}))
        site = self.get_site_attrib_template()
        site.update({"name": "default_site", "rgba": "1 0 0 0"})
        root.append(ET.Element("site", attrib=site))
        self._geom(root, "body", "box", BODY_HALF, BODY_CENTER, "body_mat")
        self._geom(root, "ridge", "box", RIDGE_HALF, RIDGE_CENTER, "body_mat")
        self._geom(root, "base", "box", BASE_HALF, BASE_CENTER, "body_mat")
        self._geom(root, "bracket", "box", BRACKET_HALF, BRACKET_CENTER, "silver_mat")
        # Decorative mug on the base plate, under the holder (solid: it only has to look right).
        self._geom(root, "mug", "cylinder", (MUG_RADIUS, MUG_HALF_HEIGHT), MUG_CENTER, "silver_mat")
        handle_pos = (MUG_CENTER[0] + MUG_RADIUS + 0.006, MUG_CENTER[1], MUG_CENTER[2])
        self._geom(root, "mug_handle", "box", (0.008, 0.004, 0.015), handle_pos, "silver_mat")

        holder = ET.SubElement(root, "body", attrib={"name": "pod_holder_root", "pos": _s(HOLDER_CENTER)})
        tangential_half = HOLDER_OUTER_RADIUS * math.sin(math.pi / self.walls)
        for i in range(self.walls):
            angle = 2.0 * math.pi * i / self.walls
            pos = (HOLDER_WALL_RADIUS * math.cos(angle), HOLDER_WALL_RADIUS * math.sin(angle), 0.0)
            quat = (math.cos(angle / 2.0), 0.0, 0.0, math.sin(angle / 2.0))
            half = (HOLDER_WALL_HALF_THICKNESS, tangential_half, HOLDER_HALF_HEIGHT)
            self._geom(holder, f"pod_holder_wall_{i}", "box", half, pos, "red_mat", quat=quat, friction=HOLDER_FRICTION)
        self._geom(
            holder,
            "pod_holder_floor",
            "cylinder",
            (HOLDER_WALL_RADIUS, HOLDER_FLOOR_HALF_HEIGHT),
            (0.0, 0.0, HOLDER_FLOOR_Z),
            "red_mat",
            friction=HOLDER_FRICTION,
        )

        lid = ET.SubElement(root, "body", attrib={"name": "lid_main", "pos": _s(LID_CENTER)})
        # Hinge along the lid's back edge; 0 = closed, positive angles swing the free (+y) end up
        # and back over the body. base.xml sets <compiler angle="radian">, so the range is radians.
        lid.append(
            ET.Element(
                "joint",
                attrib={
                    "name": "lid_main_joint0",
                    "type": "hinge",
                    "axis": "1 0 0",
                    "pos": _s(LID_HINGE_LOCAL),
                    "limited": "true",
                    "range": _s((0.0, LID_OPEN_ANGLE)),
                    "damping": str(LID_DAMPING),
                },
            )
        )
        self._geom(lid, "lid", "box", LID_HALF, (0.0, 0.0, 0.0), "silver_mat")
        return root

    def _get_object_properties(self) -> None:
        super()._get_object_properties()
        # The materials live in this object's assets and must carry its prefix like the geoms do.
        add_prefix(root=self.asset, prefix=self.naming_prefix, exclude=self.exclude_from_prefixing)

    # -- placement geometry --------------------------------------------------------------------
    @property
    def bottom_offset(self) -> np.ndarray:
        return np.array([0.0, 0.0, -MACHINE_HALF[2]])

    @property
    def top_offset(self) -> np.ndarray:
        return np.array([0.0, 0.0, LID_CENTER[2] + LID_HALF[2]])

    @property
    def horizontal_radius(self) -> float:
        return float(math.hypot(MACHINE_HALF[0], MACHINE_HALF[1]))

    def get_bounding_box_half_size(self) -> np.ndarray:
        return np.array(MACHINE_HALF)


class Coffee(CheapRenderMixin, ManipulationEnv):
    """Put the pod into the coffee machine's holder and close the lid (MimicGen Coffee).

    Args:
        variant: "D0", "D1" or "D2" (placement ranges of MimicGen's table; standard camera in all).
        scenario: "default", or "disrupted" (our choice, not in WMPO's paper: the machine body and
            base plate are a light cream instead of dark; physics identical).
        table_full_size, table_friction: table arena parameters (robosuite defaults).
        use_object_obs: add the object observables.
        reward_scale, reward_shaping: accepted for robosuite compatibility; the reward is sparse.
        placement_initializer: ignored (the variant defines the placement); kept so that robosuite
            style kwargs do not fail.
        **kwargs: forwarded to ``ManipulationEnv`` (robots, controller_configs, ...).
    """

    def __init__(
        self,
        robots: Any = "Panda",
        variant: str = "D0",
        scenario: str = "default",
        table_full_size: tuple[float, float, float] = (0.8, 0.8, 0.05),
        table_friction: tuple[float, float, float] = (1.0, 5e-3, 1e-4),
        use_object_obs: bool = True,
        reward_scale: float = 1.0,
        reward_shaping: bool = False,
        placement_initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        check_option("Coffee", "variant", variant, VARIANTS)
        check_option("Coffee", "scenario", scenario, SCENARIOS)
        # All of these must exist before super().__init__, which calls _load_model.
        self.variant = variant
        self.scenario = scenario
        self.table_full_size = table_full_size
        self.table_friction = table_friction
        self.table_offset = np.array((0.0, 0.0, TABLE_TOP_Z))
        self.use_object_obs = use_object_obs
        self.reward_scale = reward_scale
        self.reward_shaping = reward_shaping
        self.placement_initializer = placement_initializer
        super().__init__(robots=robots, **kwargs)

    # ----------------------------------------------------------------------------------- model
    def _load_model(self) -> None:
        super()._load_model()
        arena = table_arena(self)  # standard agentview in every variant (MimicGen does not swap)

        body_rgba = CREAM_RGBA if self.scenario == "disrupted" else DARK_RGBA
        self.coffee_machine = CoffeeMachineObject(name="coffee_machine", body_rgba=body_rgba)
        self.coffee_pod = CylinderObject(
            name="coffee_pod",
            size=[POD_RADIUS, POD_HALF_HEIGHT],  # fixed size: the model is identical in every process
            rgba=list(POD_RGBA),
            density=POD_DENSITY,
            friction=list(POD_FRICTION),
        )
        # robosuite's cylinders carry a 1 mm contact margin, which acts like a 1 mm thicker pod:
        # with only 0.7 mm radial clearance in the holder the pod would rest on the rim.
        for geom in self.coffee_pod.get_obj().iter("geom"):
            if geom.get("group") in (None, "0"):
                geom.set("margin", "0")

        layout = PLACEMENTS[self.variant]
        (mx, my, myaw), (px, py) = layout["machine"], layout["pod"]
        # Both samplers draw from self.rng (SimEnv.reset re-seeds them), so resets depend only on
        # the seed; the pod sampler runs second and keeps clear of the placed machine.
        self.placement_initializer = SequentialCompositeSampler(name="ObjectSampler")
        self.placement_initializer.append_sampler(
            table_sampler(self, "MachineSampler", self.coffee_machine, list(mx), list(my), rotation=myaw, z_offset=0.0)
        )
        self.placement_initializer.append_sampler(
            table_sampler(self, "PodSampler", self.coffee_pod, list(px), list(py), rotation=0.0, z_offset=0.0)
        )

        self.model = ManipulationTask(
            mujoco_arena=arena,
            mujoco_robots=[robot.robot_model for robot in self.robots],
            mujoco_objects=[self.coffee_machine, self.coffee_pod],
        )
        # Several contact points per convex pair (cylinder on box/cylinder) instead of one: with a
        # single point the pod rocks on the holder floor, sinks 1.6 mm into it and jitters up to
        # 3 mm sideways into the walls; with multi-point contacts it rests at its nominal height
        # (measured: also faster overall, fewer solver iterations). Set in the XML so the saved
        # model_file carries it.
        option = self.model.root.find("option")
        if option is None:
            option = ET.SubElement(self.model.root, "option")
        flag = option.find("flag")
        if flag is None:
            flag = ET.SubElement(option, "flag")
        flag.set("multiccd", "enable")

    def _setup_references(self) -> None:
        super()._setup_references()
        model = self.sim.model
        self.pod_body_id = model.body_name2id(self.coffee_pod.root_body)
        self.machine_body_id = model.body_name2id(self.coffee_machine.root_body)
        self.holder_body_id = model.body_name2id("coffee_machine_pod_holder_root")
        self.lid_body_id = model.body_name2id("coffee_machine_lid_main")
        self.lid_joint_name = "coffee_machine_lid_main_joint0"
        self.lid_qpos_addr = model.get_joint_qpos_addr(self.lid_joint_name)

    def _reset_internal(self) -> None:
        super()._reset_internal()
        if not self.deterministic_reset:
            for pos, quat, obj in self.placement_initializer.sample().values():
                self.sim.data.set_joint_qpos(obj.joints[0], np.concatenate([np.array(pos), np.array(quat)]))
        # The lid starts fully open; a joint qpos, so it is part of every flat state.
        self.sim.data.qpos[self.lid_qpos_addr] = LID_OPEN_ANGLE
        self.sim.forward()

    def _setup_observables(self) -> OrderedDict:
        observables = super()._setup_observables()
        if not self.use_object_obs:
            return observables

        @sensor(modality=obs.MODALITY)
        def pod_pos_rel_pod_holder(obs_cache: dict) -> np.ndarray:
            data = self.sim.data
            return np.array(data.body_xpos[self.pod_body_id] - data.body_xpos[self.holder_body_id])

        @sensor(modality=obs.MODALITY)
        def hinge_angle(obs_cache: dict) -> np.ndarray:
            return np.array([self.hinge_angle()])

        sensors = [
            *obs.body_pose_sensors(self, "pod", self.pod_body_id),
            *obs.body_pose_sensors(self, "coffee_machine", self.machine_body_id),
            *obs.body_pose_sensors(self, "pod_holder", self.holder_body_id, quat=False),
            pod_pos_rel_pod_holder,
            hinge_angle,
            *obs.gripper_to_sensors(self, "pod_pos", "pod"),
        ]
        return obs.register(self, observables, sensors)

    # --------------------------------------------------------------------------------- success
    def hinge_angle(self) -> float:
        """Lid opening angle in radians (0 = closed, 2π/3 = fully open)."""
        return float(self.sim.data.qpos[self.lid_qpos_addr])

    def pod_in_holder(self) -> bool:
        """MimicGen's pod check: centred within 5.2 mm and seated between holder bottom and lid."""
        data = self.sim.data
        pod = data.body_xpos[self.pod_body_id]
        holder = data.body_xpos[self.holder_body_id]
        lid = data.body_xpos[self.lid_body_id]
        centred = float(np.linalg.norm(pod[:2] - holder[:2])) <= POD_XY_TOLERANCE
        above_bottom = pod[2] - POD_Z_HALF > holder[2] - HOLDER_HALF_HEIGHT
        below_lid = pod[2] + POD_Z_HALF < lid[2] - LID_HALF_THICKNESS
        return bool(centred and above_bottom and below_lid)

    def lid_closed(self) -> bool:
        """MimicGen's lid check: hinge below 15°."""
        return self.hinge_angle() < LID_CLOSED_MAX_ANGLE

    def pod_grasped(self) -> bool:
        """Both finger pads touch the pod."""
        return bool(self._check_grasp(gripper=self.robots[0].gripper, object_geoms=self.coffee_pod))

    def object_body_ids(self) -> dict[str, int]:
        """Object name → MuJoCo body id: the pod, the machine root, its holder and its lid."""
        return {
            "coffee_pod": int(self.pod_body_id),
            "coffee_machine": int(self.machine_body_id),
            "pod_holder": int(self.holder_body_id),
            "lid": int(self.lid_body_id),
        }

    def subtask_signals(self) -> dict[str, bool]:
        """MimicGen's subtask end signal: the pod grasped."""
        return {"grasp": self.pod_grasped()}

    def _check_success(self) -> bool:
        return self.lid_closed() and self.pod_in_holder()

    def reward(self, action: Any = None) -> float:
        """Sparse reward: 1.0 once the pod is in the holder under the closed lid, else 0.0."""
        return 1.0 if self._check_success() else 0.0
