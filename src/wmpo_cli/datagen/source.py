"""Source demonstrations for generation: read a robomimic-layout file, annotate it by replay.

Any HDF5 file in the robomimic layout works as a source — a wmpo ``episodes.hdf5`` or a user's
own teleoperation file: ``data/demo_i/{states, actions}`` and ``data.attrs["env_args"]``. The
states are replayed in our own simulator to recover, per step, what generation needs (MimicGen's
``datagen_info``): the end-effector pose, the pose the action asked for, the gripper command,
every task object's pose and the subtask signals. Replaying (rather than trusting stored
annotations) means a file from anywhere is annotated consistently with the env it is used in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wmpo_cli.datagen.specs import DatagenSpec
from wmpo_cli.envs.experts.base import POS_SCALE, ROT_SCALE, rotation_matrix
from wmpo_cli.errors import UsageError

if TYPE_CHECKING:
    from wmpo_cli.envs.sim import SimEnv


@dataclass(frozen=True)
class RawDemo:
    """What a source file holds per demo."""

    name: str
    states: np.ndarray
    actions: np.ndarray
    success: bool


@dataclass(frozen=True)
class SourceDemo:
    """A source demo annotated for generation; index t is the state before action t.

    Attributes:
        name: demo name in the source file.
        eef_pose: (T, 4, 4) controller end-effector pose.
        target_pose: (T, 4, 4) the pose action t commanded (current pose moved by the delta).
        gripper: (T,) gripper command.
        object_poses: object name -> (T, 4, 4).
        boundaries: end index of every subtask but the last (first 0→1 transition of its signal
            after the previous boundary, plus one); the last subtask ends at T.
    """

    name: str
    eef_pose: np.ndarray
    target_pose: np.ndarray
    gripper: np.ndarray
    object_poses: dict[str, np.ndarray]
    boundaries: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.eef_pose.shape[0])


def _demo_key(name: str) -> tuple[int, str]:
    match = re.search(r"(\d+)$", name)
    return (int(match.group(1)) if match else -1, name)


def read_source_file(path: Path, task: str, env_name: str) -> list[RawDemo]:
    """Read source demos; refuses files made for another task.

    Success per demo: the ``success`` attribute (wmpo files), else any positive reward, else
    assumed (teleoperation files usually hold successful demos only).
    """
    import h5py

    path = Path(path)
    file = path / "episodes.hdf5" if path.is_dir() else path
    if not file.is_file():
        raise UsageError(f"--from {path}: no such file", hint="pass an episodes.hdf5 or a robomimic-layout HDF5")
    try:
        fh = h5py.File(file, "r")
    except OSError as exc:
        raise UsageError(f"--from {file}: not a readable HDF5 file ({exc})") from None
    with fh:
        if "data" not in fh:
            raise UsageError(f"--from {file}: no 'data' group (not a robomimic-layout file)")
        data = fh["data"]
        env_args = _env_args(data.attrs.get("env_args"))
        source_task = env_args.get("wmpo_task") or env_args.get("env_name")
        if source_task not in (None, task, env_name):
            raise UsageError(
                f"--from {file}: demos are for {source_task!r}, not {task!r}",
                hint="generate from source demos of the same task",
            )
        demos = []
        for name in sorted((k for k in data if k.startswith("demo")), key=_demo_key):
            group = data[name]
            if "states" not in group or "actions" not in group:
                raise UsageError(f"--from {file}: {name} lacks 'states' or 'actions'")
            states = np.asarray(group["states"][()], dtype=np.float64)
            actions = np.asarray(group["actions"][()], dtype=np.float64)
            if states.ndim != 2 or actions.shape != (len(states), 7):
                raise UsageError(
                    f"--from {file}: {name} has states {states.shape} and actions {actions.shape}; "
                    "expected (T, S) and (T, 7)"
                )
            if "success" in group.attrs:
                success = bool(group.attrs["success"])
            elif "rewards" in group:
                success = bool(np.any(np.asarray(group["rewards"][()]) > 0))
            else:
                success = True
            demos.append(RawDemo(name, states, actions, success))
    if not demos:
        raise UsageError(f"--from {file}: holds no demos")
    return demos


def _env_args(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = json.loads(raw if isinstance(raw, str) else bytes(raw).decode())
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def target_poses(eef_pose: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The pose each OSC_POSE delta action commanded: p + 0.05·a[:3], R(0.5·a[3:6])·R."""
    targets = np.array(eef_pose, dtype=np.float64, copy=True)
    clipped = np.clip(actions, -1.0, 1.0)
    targets[:, :3, 3] += clipped[:, :3] * POS_SCALE
    for t in range(len(actions)):
        targets[t, :3, :3] = rotation_matrix(clipped[t, 3:6] * ROT_SCALE) @ eef_pose[t, :3, :3]
    return targets


def subtask_boundaries(signals: dict[str, np.ndarray], spec: DatagenSpec) -> tuple[int, ...] | None:
    """End index of every signalled subtask, or None if a signal never rises in order."""
    boundaries: list[int] = []
    start = 0
    for subtask in spec.subtasks:
        if subtask.end_signal is None:
            break
        signal = np.asarray(signals[subtask.end_signal], dtype=bool)
        # Index of the first 0->1 transition at or after `start` (a signal already true at the
        # segment start must first fall, as MimicGen requires a rising edge).
        rises = np.flatnonzero(~signal[start:-1] & signal[start + 1 :]) if len(signal) > start + 1 else []
        if len(rises) == 0:
            return None
        end = start + int(rises[0]) + 1 + 1  # one step after the transition
        boundaries.append(end)
        start = end
    length = len(next(iter(signals.values()))) if signals else 0
    if boundaries and boundaries[-1] >= length:
        return None  # the last subtask would be empty
    return tuple(boundaries)


def annotate(env: SimEnv, demo: RawDemo, spec: DatagenSpec) -> SourceDemo | None:
    """Replay ``demo``'s states in ``env`` and collect the per-step generation info.

    Returns None when the demo cannot be segmented (a subtask signal never rises).
    """
    if demo.states.shape[1] != env.state_size:
        raise UsageError(
            f"source demo {demo.name} has {demo.states.shape[1]}-value states; "
            f"the {env.task.name} model needs {env.state_size}",
            hint="the source must come from the same task model (any variant or scenario)",
        )
    steps = len(demo.states)
    eef = np.empty((steps, 4, 4))
    objects: dict[str, np.ndarray] = {}
    signals: dict[str, np.ndarray] = {name: np.zeros(steps, dtype=bool) for name in spec.signals}
    for t, state in enumerate(demo.states):
        env.restore(state)
        eef[t] = env.eef_pose()
        for name, pose in env.object_poses().items():
            objects.setdefault(name, np.empty((steps, 4, 4)))[t] = pose
        flags = env.subtask_signals()
        for name in spec.signals:
            signals[name][t] = flags[name]
    missing = {s.object for s in spec.subtasks} - set(objects)
    if missing:
        raise UsageError(f"task objects {sorted(missing)} named by the subtask spec are not in the env")
    boundaries = subtask_boundaries(signals, spec)
    if boundaries is None:
        return None
    return SourceDemo(
        name=demo.name,
        eef_pose=eef,
        target_pose=target_poses(eef, demo.actions),
        gripper=np.asarray(demo.actions[:, 6], dtype=np.float64).copy(),
        object_poses=objects,
        boundaries=boundaries,
    )


def save_sources(path: Path, sources: list[SourceDemo]) -> None:
    """Store annotated sources as one ``.npz`` that worker processes load once."""
    arrays: dict[str, np.ndarray] = {"names": np.array([s.name for s in sources])}
    for i, src in enumerate(sources):
        arrays[f"{i}/eef_pose"] = src.eef_pose
        arrays[f"{i}/target_pose"] = src.target_pose
        arrays[f"{i}/gripper"] = src.gripper
        arrays[f"{i}/boundaries"] = np.asarray(src.boundaries, dtype=np.int64)
        for name, poses in src.object_poses.items():
            arrays[f"{i}/object/{name}"] = poses
    from wmpo_cli.artifacts.atomic import atomic_path

    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_sources(path: Path) -> list[SourceDemo]:
    """Inverse of :func:`save_sources`."""
    with np.load(Path(path)) as data:
        names = [str(n) for n in data["names"]]
        sources = []
        for i, name in enumerate(names):
            prefix = f"{i}/object/"
            sources.append(
                SourceDemo(
                    name=name,
                    eef_pose=data[f"{i}/eef_pose"],
                    target_pose=data[f"{i}/target_pose"],
                    gripper=data[f"{i}/gripper"],
                    object_poses={k[len(prefix) :]: data[k] for k in data.files if k.startswith(prefix)},
                    boundaries=tuple(int(b) for b in data[f"{i}/boundaries"]),
                )
            )
    return sources
