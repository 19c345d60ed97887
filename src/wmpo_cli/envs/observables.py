"""Object observables shared by the task envs: body poses and gripper-to-object vectors.

robosuite envs expose object state as ``Observable`` sensors. Every task adds the same kinds —
an object's world position and (xyzw) quaternion, and the vector from the gripper to it — so they
are built here once instead of being spelled out per task.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from robosuite.utils.observables import Observable, sensor
from robosuite.utils.transform_utils import convert_quat

MODALITY = "object"


def body_pose_sensors(env: Any, prefix: str, body_id: int, *, quat: bool = True) -> list[Callable]:
    """``<prefix>_pos`` (and ``<prefix>_quat``, xyzw) sensors of a MuJoCo body's world pose."""

    def pos(obs_cache: dict) -> np.ndarray:
        return np.array(env.sim.data.body_xpos[body_id])

    def orientation(obs_cache: dict) -> np.ndarray:
        return convert_quat(np.array(env.sim.data.body_xquat[body_id]), to="xyzw")

    pos.__name__ = f"{prefix}_pos"
    orientation.__name__ = f"{prefix}_quat"
    sensors = [sensor(modality=MODALITY)(pos)]
    if quat:
        sensors.append(sensor(modality=MODALITY)(orientation))
    return sensors


def gripper_to_sensors(env: Any, pos_name: str, label: str) -> list[Callable]:
    """``gripper_to_<label>`` vectors from each arm's gripper to the observable ``pos_name``."""
    robot = env.robots[0]
    arm_prefixes = env._get_arm_prefixes(robot, include_robot_name=False)
    full_prefixes = env._get_arm_prefixes(robot)
    return [
        env._get_obj_eef_sensor(full_pf, pos_name, f"{arm_pf}gripper_to_{label}", MODALITY)
        for arm_pf, full_pf in zip(arm_prefixes, full_prefixes, strict=True)
    ]


def register(env: Any, observables: OrderedDict, sensors: Iterable[Callable]) -> OrderedDict:
    """Add sensors to an env's observables at its control rate."""
    for s in sensors:
        observables[s.__name__] = Observable(name=s.__name__, sensor=s, sampling_rate=env.control_freq)
    return observables
