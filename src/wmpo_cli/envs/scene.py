"""Scene pieces shared by the table-top tasks: the robot on its table mount, the arena, wood cubes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from robosuite.models.arenas import Arena, TableArena
from robosuite.utils.mjcf_utils import CustomMaterial
from robosuite.utils.placement_samplers import UniformRandomSampler

# MimicGen's wide "agentview_full" camera pose: back and up from robosuite's agentview, so that
# the larger placement regions of the wider variants stay in frame.
AGENTVIEW_FULL_POS: tuple[float, float, float] = (0.753078462147161, 2.06e-08, 1.5194726087166726)
AGENTVIEW_FULL_QUAT: tuple[float, float, float, float] = (
    0.6432409286499023,
    0.293668270111084,
    0.2936684489250183,
    0.6432408690452576,
)


def use_wide_agentview(arena: Arena) -> None:
    """Give the arena's ``agentview`` camera MimicGen's wide ``agentview_full`` pose."""
    arena.set_camera(camera_name="agentview", pos=list(AGENTVIEW_FULL_POS), quat=list(AGENTVIEW_FULL_QUAT))


def wood_material(texture: str, name: str) -> CustomMaterial:
    """A cube-mapped wood material with the specular/shininess robosuite's and MimicGen's cubes use."""
    return CustomMaterial(
        texture=texture,
        tex_name=name,
        mat_name=f"{name}_mat",
        tex_attrib={"type": "cube"},
        mat_attrib={"texrepeat": "1 1", "specular": "0.4", "shininess": "0.1"},
    )


def check_option(task: str, kind: str, value: str, known: Iterable[str]) -> None:
    """ValueError unless ``value`` is one of ``known`` (an env's variant or scenario)."""
    known = tuple(known)
    if value not in known:
        raise ValueError(f"unknown {task} {kind} {value!r}; known: {', '.join(known)}")


def table_sampler(
    env: Any,
    name: str,
    objects: Any,
    x_range: Iterable[float],
    y_range: Iterable[float],
    rotation: Any,
    z_offset: float,
) -> UniformRandomSampler:
    """A uniform placement sampler on the env's table with the settings every MimicGen task uses.

    Yaw about z (``rotation`` None = U(0, 2π), a number, or a range), offsets from the table centre,
    no overlaps, objects may overhang the range. It draws from ``env.rng``, which ``SimEnv.reset``
    re-seeds, so placements depend only on the episode seed. Call from ``_load_model``.
    """
    return UniformRandomSampler(
        name=name,
        mujoco_objects=objects,
        x_range=list(x_range),
        y_range=list(y_range),
        rotation=rotation,
        rotation_axis="z",
        ensure_object_boundary_in_range=False,
        ensure_valid_placement=True,
        reference_pos=env.table_offset,
        z_offset=z_offset,
        rng=env.rng,
    )


def table_arena(env: Any, arena_cls: type[TableArena] = TableArena) -> TableArena:
    """Place the env's robot at the table edge and build the table arena at the world origin.

    ``env`` is a robosuite manipulation env with ``robots``, ``table_full_size``,
    ``table_friction`` and ``table_offset`` set (called from its ``_load_model``); ``arena_cls``
    may be a TableArena subclass such as robosuite's ``PegsArena``.
    """
    robot_model = env.robots[0].robot_model
    robot_model.set_base_xpos(robot_model.base_xpos_offset["table"](env.table_full_size[0]))
    arena = arena_cls(
        table_full_size=env.table_full_size,
        table_friction=env.table_friction,
        table_offset=env.table_offset,
    )
    arena.set_origin([0, 0, 0])
    return arena


def grey_table_top(arena: TableArena) -> None:
    """Swap the table's white ceramic top for robosuite's flat grey ``table_mat`` (a visual-only edit).

    This is the "background" disruption of WMPO's Table 2 for StackThree; only the visual geom
    changes, so physics and flat states are identical to the default scenario.
    """
    for geom in arena.worldbody.iter("geom"):
        if geom.get("name") == "table_visual":
            geom.set("material", "table_mat")
            return
    raise RuntimeError("table arena has no 'table_visual' geom")
