"""``episodes.hdf5``: a superset of robomimic's dataset layout (schema ``wmpo.episodes/1``).

    /                      attrs: wmpo_schema
    data/                  attrs: total (sum of num_samples), env_args (JSON)
      demo_<i>/            attrs: num_samples, model_file, success, success_step (-1 = never),
                                  source, policy_id, task, variant, scenario, seed, instruction
        actions            (T, 7) float64
        states             (T, S) float64 flattened MuJoCo [time, qpos, qvel]; states[t] is before actions[t]
        rewards            (T,) float64, reward after actions[t]
        dones              (T,) int64, 1 on the last step
        step_success       (T,) uint8, task success of states[t] (what frame t shows)
        obs/<camera>_image (T, H, W, 3) uint8, upright, gzip
        obs/<proprio key>  (T, d) float64
    mask/{train,valid,success,failure}   demo names as bytes (robomimic filter keys)

Episodes are written one small file each ("shards", atomically) while a stage runs, so a killed
run keeps every finished episode, and merged into the final file at the end.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wmpo_cli.artifacts.atomic import atomic_path
from wmpo_cli.errors import ArtifactError

EPISODES_SCHEMA = "wmpo.episodes/1"
EPISODES_FILE = "episodes.hdf5"
MASK_NAMES = ("train", "valid", "success", "failure")
_REQUIRED = ("actions", "states", "rewards", "dones", "step_success")


@dataclass
class EpisodeData:
    """Everything stored for one episode (arrays are per step)."""

    actions: np.ndarray
    states: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    step_success: np.ndarray
    obs: dict[str, np.ndarray]
    attrs: dict[str, Any]

    @property
    def num_samples(self) -> int:
        return len(self.actions)


def _write_episode(group: h5py.Group, episode: EpisodeData, compression: int) -> None:
    n = episode.num_samples
    arrays = {
        "actions": np.asarray(episode.actions, dtype=np.float64),
        "states": np.asarray(episode.states, dtype=np.float64),
        "rewards": np.asarray(episode.rewards, dtype=np.float64),
        "dones": np.asarray(episode.dones, dtype=np.int64),
        "step_success": np.asarray(episode.step_success, dtype=np.uint8),
    }
    for name, array in arrays.items():
        if len(array) != n:
            raise ValueError(f"episode array '{name}' has {len(array)} steps, actions have {n}")
        group.create_dataset(name, data=array)
    obs = group.create_group("obs")
    for key, array in episode.obs.items():
        if len(array) != n:
            raise ValueError(f"obs '{key}' has {len(array)} steps, actions have {n}")
        if array.dtype == np.uint8 and array.ndim == 4:
            obs.create_dataset(
                key,
                data=array,
                chunks=(1, *array.shape[1:]),
                compression="gzip" if compression > 0 else None,
                compression_opts=compression if compression > 0 else None,
            )
        else:
            obs.create_dataset(key, data=np.asarray(array, dtype=np.float64))
    group.attrs["num_samples"] = n
    for key, value in episode.attrs.items():
        group.attrs[key] = value


def write_shard(path: Path, episode: EpisodeData, *, env_args: Mapping[str, Any], compression: int = 4) -> None:
    """Write one episode to its own file, atomically (a killed writer leaves no shard)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        fh.attrs["env_args"] = json.dumps(dict(env_args))
        _write_episode(fh.create_group("episode"), episode, compression)


def merge_shards(
    out_path: Path,
    shards: Sequence[Path],
    *,
    valid_names: Sequence[str],
) -> dict[str, int]:
    """Merge shards (in the given order) into ``out_path`` as demo_0..demo_{n-1}, atomically.

    ``env_args`` comes from the first shard (all shards of one artifact share it). Returns the
    number of demos in each mask.
    """
    env_args = "{}"
    names = [f"demo_{i}" for i in range(len(shards))]
    masks: dict[str, list[str]] = {name: [] for name in MASK_NAMES}
    total = 0
    with atomic_path(Path(out_path)) as tmp, h5py.File(tmp, "w") as out:
        out.attrs["wmpo_schema"] = EPISODES_SCHEMA
        data = out.create_group("data")
        for name, shard in zip(names, shards, strict=True):
            with h5py.File(shard, "r") as src:
                src.copy(src["episode"], data, name=name)
                env_args = src.attrs.get("env_args", env_args)
            group = data[name]
            total += int(group.attrs["num_samples"])
            masks["valid" if name in valid_names else "train"].append(name)
            masks["success" if bool(group.attrs["success"]) else "failure"].append(name)
        data.attrs["total"] = total
        data.attrs["env_args"] = env_args
        mask = out.create_group("mask")
        for key, members in masks.items():
            mask.create_dataset(key, data=np.array(members, dtype="S"))
    return {key: len(members) for key, members in masks.items()}


class EpisodesFile:
    """Validated read access to an ``episodes.hdf5``; any structural problem is an ArtifactError."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._fh = h5py.File(self.path, "r")
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{self.path}: not a readable HDF5 file ({exc})") from exc
        try:
            self._validate()
        except ArtifactError:
            self._fh.close()
            raise

    def _validate(self) -> None:
        fh = self._fh
        if fh.attrs.get("wmpo_schema") != EPISODES_SCHEMA:
            raise ArtifactError(f"{self.path}: not a wmpo episodes file (wmpo_schema missing or unknown)")
        if "data" not in fh or "mask" not in fh:
            raise ArtifactError(f"{self.path}: missing the 'data' or 'mask' group")
        for name in self.demo_names:
            group = fh["data"][name]
            missing = [key for key in _REQUIRED if key not in group]
            if missing:
                raise ArtifactError(f"{self.path}: {name} lacks {', '.join(missing)}")

    def __enter__(self) -> EpisodesFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._fh.close()

    @property
    def demo_names(self) -> list[str]:
        """demo_0, demo_1, ... in numeric order (robomimic sorts them the same way)."""
        return sorted(self._fh["data"].keys(), key=lambda name: int(name.split("_")[-1]))

    @property
    def env_args(self) -> dict[str, Any]:
        return json.loads(self._fh["data"].attrs["env_args"])

    def mask(self, name: str) -> list[str]:
        return [item.decode() for item in self._fh["mask"][name][()]]

    def obs_keys(self, demo: str) -> list[str]:
        """The observation datasets one episode holds (``<camera>_image``, proprio keys)."""
        return sorted(self._fh["data"][demo]["obs"].keys())

    def attrs(self, demo: str) -> dict[str, Any]:
        return {key: _plain(value) for key, value in self._fh["data"][demo].attrs.items()}

    def load(self, demo: str, obs_keys: Sequence[str] | None = None) -> EpisodeData:
        group = self._fh["data"][demo]
        keys = list(group["obs"].keys()) if obs_keys is None else list(obs_keys)
        return EpisodeData(
            actions=group["actions"][()],
            states=group["states"][()],
            rewards=group["rewards"][()],
            dones=group["dones"][()],
            step_success=group["step_success"][()].astype(bool),
            obs={key: group["obs"][key][()] for key in keys},
            attrs=self.attrs(demo),
        )

    def summary(self) -> dict[str, Any]:
        successes = self.mask("success")
        lengths = [int(self._fh["data"][name].attrs["num_samples"]) for name in self.demo_names]
        first_obs = self._fh["data"][self.demo_names[0]]["obs"] if self.demo_names else {}
        return {
            "episodes": len(lengths),
            "successes": len(successes),
            "success_rate": len(successes) / len(lengths) if lengths else 0.0,
            "total_steps": int(sum(lengths)),
            "mean_length": float(np.mean(lengths)) if lengths else 0.0,
            "obs": {key: list(first_obs[key].shape[1:]) for key in first_obs},
        }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value
