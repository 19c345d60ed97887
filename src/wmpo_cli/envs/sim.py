"""``SimEnv``: one robosuite environment per process, with seeded resets and bit-exact restores.

Design choices (all driven by data collection and exact replay):

* The robosuite env is built once (``hard_reset=False``) so the compiled MuJoCo model never changes
  within a process, and it is built identically in every process (fixed object sizes, fixed
  construction seed), so a flat state recorded anywhere can be restored anywhere.
* :meth:`SimEnv.reset` re-seeds every random source from the episode seed, so an initial state
  depends only on (task, variant, scenario, seed), never on earlier episodes.
* After each step the sim is forwarded once more. With ``lite_physics`` robosuite leaves the
  kinematics one substep stale after ``mj_step2``; forwarding makes observations, success checks
  and rendered frames agree exactly with what :meth:`SimEnv.restore` computes from the same flat
  state. ``mj_forward`` leaves the integrator state (qpos, qvel, warm start) untouched, so the
  trajectory itself is unchanged.
* Images are never part of ``step``: :meth:`SimEnv.render` draws a camera on demand with cheap
  settings (no MSAA, shadows or reflections), so physics-only workers need no GL context at all.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import numpy as np

from wmpo_cli.envs.tasks import TaskSpec

# One llvmpipe (OSMesa) render thread, set before any GL context exists: at our frame sizes its
# extra threads cost more than they save and fight worker processes for the cores (see pool.py).
os.environ.setdefault("LP_NUM_THREADS", "1")

# Flattened MuJoCo state layout used by robosuite and robomimic: [time, qpos..., qvel...].
_CONSTRUCTION_SEED = 0
_MAX_RENDER_SIZE = 512


def _quiet_robosuite() -> None:
    """robosuite logs a controller-config INFO line per env and macro warnings; keep stderr clean."""
    if "robosuite" not in sys.modules:
        # Its import-time warnings (no private macro file, optional robot models / IK) are about
        # features wmpo does not use; silence them for the import only.
        logging.disable(logging.WARNING)
        try:
            import robosuite  # noqa: F401
        finally:
            logging.disable(logging.NOTSET)
    logging.getLogger("robosuite_logs").setLevel(logging.WARNING)


class SimEnv:
    """Thin wrapper around one robosuite env for a registered task.

    Attributes:
        task: the task's static description.
        variant: initial-state distribution ("D0", "D1", ...).
        scenario: evaluation scenario ("default").
        cameras: cameras :meth:`render` may be asked for (empty: no offscreen renderer).
        image_size: default square image size for :meth:`render`.
        raw: the underlying robosuite environment.
    """

    proprio_keys: tuple[str, ...] = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")

    def __init__(
        self,
        task: TaskSpec,
        variant: str = "D0",
        scenario: str = "default",
        cameras: tuple[str, ...] = (),
        image_size: int = 64,
    ) -> None:
        _quiet_robosuite()
        from robosuite.controllers import load_composite_controller_config

        self.task = task
        self.variant = variant
        self.scenario = scenario
        self.cameras = tuple(cameras)
        self.image_size = int(image_size)

        from wmpo_cli.envs.tasks import load_class

        self._env_name = task.env_name
        env_cls = load_class(task.env_class)
        # Every task env takes its variant and scenario; stock-derived Lift has a single variant.
        task_kwargs: dict[str, Any] = {} if task.name == "lift" else {"variant": variant, "scenario": scenario}
        self._env_kwargs: dict[str, Any] = {
            "robots": "Panda",
            "controller_configs": load_composite_controller_config(robot="Panda"),
            "has_renderer": False,
            "has_offscreen_renderer": bool(self.cameras),
            "use_camera_obs": False,
            "use_object_obs": True,
            "reward_shaping": False,
            "control_freq": 20,
            "lite_physics": True,
            "horizon": task.horizon_for(variant),
            "ignore_done": True,
            "hard_reset": False,
            "camera_names": list(self.cameras) or ["agentview"],
            "camera_heights": self.image_size,
            "camera_widths": self.image_size,
            "renderer": "mujoco",  # the default "mjviewer" is an on-screen viewer we never want
            **task_kwargs,
        }
        self.raw: Any = env_cls(seed=_CONSTRUCTION_SEED, **self._env_kwargs)
        self._robot = self.raw.robots[0]
        self._eef_site_id = int(self._robot.eef_site_id["right"])
        self._base_body_id = int(self.raw.sim.model.body_name2id(self._robot.robot_model.root_body))
        self._objects: dict[str, int] = dict(self.raw.object_body_ids())
        # robosuite hides its debug sites (gripper pointer, target markers) only inside reset();
        # a freshly built env shows them, so frames rendered before the first reset would differ.
        self.raw.visualize(vis_settings={name: False for name in self.raw._visualizations})
        self._after_reset()

    # ------------------------------------------------------------------------------ episodes
    def reset(self, seed: int) -> dict[str, np.ndarray]:
        """Start an episode whose initial state depends only on (task, variant, scenario, seed)."""
        rng = np.random.default_rng(int(seed))
        # robosuite draws robot joint noise from env.rng and object placements from each sampler's
        # own rng reference (captured at model load), so every one of them must be re-pointed.
        self.raw.rng = rng
        for sampler in _samplers(self.raw.placement_initializer):
            sampler.rng = rng
        self._clear_gripper_ramp()
        self.raw.reset()
        # Canonicalise: the same sequence as restore(), so that restore(states[0]) + the recorded
        # actions reproduce the episode exactly.
        self._load_flat_state(self.get_state())
        self._sync_controllers()
        self._after_reset()
        return self._observe()

    def reset_to(self, state: np.ndarray) -> dict[str, np.ndarray]:
        """Start an episode from a stored initial state (e.g. one of a fixed initial-state set).

        Stepping from here is bit-identical to stepping after the ``reset(seed)`` that produced
        ``state``, because :meth:`reset` ends with the same restore sequence.
        """
        flat = np.asarray(state, dtype=np.float64)
        if flat.shape != (self.state_size,):
            raise ValueError(f"initial state has {flat.size} values; this model's flat state has {self.state_size}")
        self._clear_gripper_ramp()
        obs = self.restore(flat)
        self._after_reset()
        return obs

    @property
    def state_size(self) -> int:
        """Length of the flat state [time, qpos, qvel] of this model."""
        model = self.raw.sim.model
        return 1 + int(model.nq) + int(model.nv)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
        """Apply one 7-D OSC_POSE delta action (20 Hz); returns (obs, sparse reward) after it."""
        act = np.asarray(action, dtype=np.float64)
        if act.shape != (7,):
            raise ValueError(f"expected a (7,) action, got shape {act.shape}")
        self.raw.step(act)
        # Bring kinematics/contacts up to date with the integrated state (see module docstring).
        self.raw.sim.forward()
        obs = self._observe()
        return obs, float(self.raw.reward(act))

    def is_success(self) -> bool:
        """Task success of the current state."""
        return bool(self.raw._check_success())

    def subtask_signals(self) -> dict[str, bool]:
        """The task's MimicGen subtask end signals for the current state (e.g. ``grasp_1``)."""
        return {name: bool(value) for name, value in self.raw.subtask_signals().items()}

    # ------------------------------------------------------------------------- state access
    def get_state(self) -> np.ndarray:
        """Flattened MuJoCo state [time, qpos, qvel] (float64), as robomimic stores it."""
        return np.asarray(self.raw.sim.get_state().flatten(), dtype=np.float64).copy()

    def restore(self, state: np.ndarray) -> dict[str, np.ndarray]:
        """Set the sim to a flat state such that stepping from it reproduces the recording bit-exactly.

        robosuite 1.5 keeps controller state outside MuJoCo (cached eef pose/Jacobian/mass matrix,
        goal, nullspace target, gripper ramp); all of it is rebuilt from the restored state here.
        """
        self._load_flat_state(np.asarray(state, dtype=np.float64))
        self._sync_controllers()
        return self._observe()

    def _load_flat_state(self, flat: np.ndarray) -> None:
        # sim.reset() clears everything a flat state does not hold (warm start, ctrl, contacts), so
        # the result does not depend on what the sim did before.
        sim = self.raw.sim
        sim.reset()
        sim.set_state_from_flattened(flat)
        sim.forward()

    def _sync_controllers(self) -> None:
        """Rebuild every controller cache from the current sim state.

        Also applied right after :meth:`reset`: robosuite builds the controllers while the kinematics
        are stale (before forwarding the new joint noise), so without this the first action of an
        episode would be interpreted against a stale eef pose and no restore could match it.
        """
        sim = self.raw.sim
        robot = self._robot
        robot.composite_controller.update_state()
        for controller in robot.part_controllers.values():
            controller.update(force=True)
            controller.reset_goal()
            controller.initial_joint = np.array(sim.data.qpos[controller.qpos_index])
        self._clear_gripper_ramp()
        self.raw._update_observables(force=True)

    def object_poses(self) -> dict[str, np.ndarray]:
        """Privileged 4x4 world poses of the task objects (body frames)."""
        data = self.raw.sim.data
        poses = {}
        for name, body_id in self._objects.items():
            pose = np.eye(4)
            pose[:3, :3] = np.asarray(data.body_xmat[body_id]).reshape(3, 3)
            pose[:3, 3] = data.body_xpos[body_id]
            poses[name] = pose
        return poses

    def eef_pose(self) -> np.ndarray:
        """4x4 world pose of the controller's end-effector site (the grip site)."""
        data = self.raw.sim.data
        pose = np.eye(4)
        pose[:3, :3] = np.asarray(data.site_xmat[self._eef_site_id]).reshape(3, 3)
        pose[:3, 3] = data.site_xpos[self._eef_site_id]
        return pose

    def arm_qpos(self) -> np.ndarray:
        """Arm joint positions (7 for the Panda), for experts that steer clear of joint limits."""
        return np.array(self.raw.sim.data.qpos[self._robot._ref_joint_pos_indexes])

    def robot_base_pos(self) -> np.ndarray:
        """World position of the robot's base body."""
        return np.array(self.raw.sim.data.body_xpos[self._base_body_id])

    def gripper_qpos(self) -> np.ndarray:
        """Finger joint positions (opening width is their difference)."""
        idx = self._robot._ref_gripper_joint_pos_indexes["right"]
        return np.array(self.raw.sim.data.qpos[idx])

    # ------------------------------------------------------------------------------ images
    def render(self, camera: str, size: int | None = None) -> np.ndarray:
        """Render ``camera`` as an upright uint8 (size, size, 3) image."""
        if camera not in self.cameras:
            raise ValueError(f"camera {camera!r} was not requested when the env was made (cameras={self.cameras})")
        side = self.image_size if size is None else int(size)
        if not 0 < side <= _MAX_RENDER_SIZE:
            raise ValueError(f"image size must be in 1..{_MAX_RENDER_SIZE}, got {side}")
        # robosuite makes its GL context current only when it is created: with several envs (or
        # one closed env) in a process, rendering would otherwise draw into another env's context.
        context = self.raw.sim._render_context_offscreen
        if context is not None:
            context.gl_ctx.make_current()
        frame = self.raw.sim.render(width=side, height=side, camera_name=camera)
        # MuJoCo reads pixels bottom-up (OpenGL convention); datasets store images upright.
        return np.ascontiguousarray(frame[::-1])

    # ------------------------------------------------------------------------------ metadata
    def model_xml(self) -> str:
        """MuJoCo's XML of the compiled model (robomimic's per-demo ``model_file``)."""
        return str(self.raw.sim.model.get_xml())

    def env_args(self) -> dict[str, Any]:
        """robomimic-style env description plus the wmpo task coordinates."""
        kwargs = dict(self._env_kwargs)
        kwargs.pop("renderer", None)
        return {
            "env_name": self._env_name,
            "env_type": 1,  # robomimic's EnvType.ROBOSUITE_TYPE
            "env_kwargs": kwargs,
            "wmpo_task": self.task.name,
            "variant": self.variant,
            "scenario": self.scenario,
        }

    def close(self) -> None:
        """Free the sim and any GL context."""
        raw = getattr(self, "raw", None)
        if raw is not None:
            raw.close()
            self.raw = None

    # ------------------------------------------------------------------------------ helpers
    def _observe(self) -> dict[str, np.ndarray]:
        obs = self.raw._get_observations(force_update=True)
        return {key: np.array(value) for key, value in obs.items()}

    def _clear_gripper_ramp(self) -> None:
        # The gripper controller ramps its command from `current_action`; with hard_reset=False this
        # would carry over from the previous episode (or the pre-restore state).
        for arm in self._robot.arms:
            gripper = self._robot.gripper[arm]
            gripper.current_action = np.zeros(gripper.dof)

    def _after_reset(self) -> None:
        from wmpo_cli.envs.render_utils import disable_costly_scene_flags

        disable_costly_scene_flags(self.raw.sim)

    def __enter__(self) -> SimEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _samplers(sampler: Any) -> list[Any]:
    """A placement sampler and, for composite samplers, all nested ones."""
    found = [sampler]
    for child in getattr(sampler, "samplers", {}).values():
        found.extend(_samplers(child))
    return found
