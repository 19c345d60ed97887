"""Scripted expert for ``lift``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from wmpo_cli.envs.experts.base import (
    CLOSE,
    OPEN,
    TABLE_Z,
    Script,
    ScriptExpertBase,
    finger_yaw,
    grasp_rotation,
    nearest_grasp_yaw,
    yaw_of,
)

if TYPE_CHECKING:
    from wmpo_cli.envs.sim import SimEnv


class LiftExpert(ScriptExpertBase):
    """Lift: hover over the cube, descend, close, lift 15 cm and hold."""

    def _run(self, env: SimEnv) -> Script:
        for attempt in range(3):
            self.log.append(f"attempt {attempt}")
            cube = env.object_poses()["cube"]
            phi = nearest_grasp_yaw(yaw_of(cube[:3, :3]), finger_yaw(env.eef_pose()[:3, :3]))
            rot = grasp_rotation(phi)

            def above(height: float, rot: np.ndarray = rot) -> tuple[np.ndarray, np.ndarray]:
                pos = env.object_poses()["cube"][:3, 3].copy()
                pos[2] += height
                return pos, rot

            self._grip = OPEN
            yield from self._move(env, lambda: above(0.08), tol=0.01, max_steps=60)
            yield from self._move(env, lambda: above(0.0), tol=0.004, max_steps=40, speed=0.6)
            grasp_at = above(0.0)
            yield from self._gripper(env, CLOSE, 10, grasp_at)
            lift_to = (grasp_at[0] + np.array([0.0, 0.0, 0.15]), rot)
            yield from self._move(env, lambda lift_to=lift_to: lift_to, tol=0.01, max_steps=40, speed=0.8)
            if env.object_poses()["cube"][2, 3] > TABLE_Z + 0.06:
                return True
            self.log.append("lift failed: cube not in hand")
            yield from self._gripper(env, OPEN, 6, (env.eef_pose()[:3, 3], rot))
        return False
