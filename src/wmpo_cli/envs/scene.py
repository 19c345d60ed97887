"""Scene pieces shared by the table-top tasks: the robot on its table mount, the arena, wood cubes."""

from __future__ import annotations

from typing import Any

from robosuite.models.arenas import TableArena
from robosuite.utils.mjcf_utils import CustomMaterial


def wood_material(texture: str, name: str) -> CustomMaterial:
    """A cube-mapped wood material with the specular/shininess robosuite's and MimicGen's cubes use."""
    return CustomMaterial(
        texture=texture,
        tex_name=name,
        mat_name=f"{name}_mat",
        tex_attrib={"type": "cube"},
        mat_attrib={"texrepeat": "1 1", "specular": "0.4", "shininess": "0.1"},
    )


def table_arena(env: Any) -> TableArena:
    """Place the env's robot at the table edge and build the table arena at the world origin.

    ``env`` is a robosuite manipulation env with ``robots``, ``table_full_size``,
    ``table_friction`` and ``table_offset`` set (called from its ``_load_model``).
    """
    robot_model = env.robots[0].robot_model
    robot_model.set_base_xpos(robot_model.base_xpos_offset["table"](env.table_full_size[0]))
    arena = TableArena(
        table_full_size=env.table_full_size,
        table_friction=env.table_friction,
        table_offset=env.table_offset,
    )
    arena.set_origin([0, 0, 0])
    return arena
